# One cache option selects the sanitizers for the whole build: '' | address,undefined | thread.
set(NONOPROXY_SANITIZE "" CACHE STRING "'' | address,undefined | thread")
if(NONOPROXY_SANITIZE)
  if(NONOPROXY_SANITIZE MATCHES "thread" AND NONOPROXY_SANITIZE MATCHES "address")
    message(FATAL_ERROR "TSan cannot be combined with ASan")
  endif()
  add_compile_options(-fsanitize=${NONOPROXY_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${NONOPROXY_SANITIZE})
endif()
