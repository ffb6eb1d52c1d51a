# The project's warning set (STYLE.md §4). -Werror is on by default only when nonoproxy is the
# top-level project, so that a newer compiler never breaks an embedding build.
set(NONOPROXY_WARNINGS -Wall -Wextra -Wpedantic -Wconversion -Wno-sign-conversion -Wshadow -Wvla
    -Wformat=2 -Wimplicit-fallthrough -Wmissing-prototypes -Wstrict-prototypes -Wwrite-strings
    -Wcast-qual -Wpointer-arith -Wundef -Wframe-larger-than=8192)
option(NONOPROXY_WERROR "Treat warnings as errors" ${PROJECT_IS_TOP_LEVEL})

function(nonoproxy_target_warnings tgt)
  target_compile_options(${tgt} PRIVATE ${NONOPROXY_WARNINGS}
                         $<$<BOOL:${NONOPROXY_WERROR}>:-Werror>)
endfunction()
