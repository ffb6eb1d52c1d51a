# Dependencies come from Debian packages. mbedTLS 2.28 and http-parser ship no pkg-config file
# or CMake package, so they are found here by header and library; the rest use pkg-config.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

function(nonoproxy_find_plain_lib target header)
  set(libs ${ARGN})
  find_path(${target}_INCLUDE_DIR ${header} REQUIRED)
  set(paths "")
  foreach(l IN LISTS libs)
    find_library(${target}_${l}_LIBRARY NAMES lib${l}.a ${l} REQUIRED)
    list(APPEND paths ${${target}_${l}_LIBRARY})
  endforeach()
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${${target}_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${paths}")
endfunction()

nonoproxy_find_plain_lib(np_dep_http_parser http_parser.h http_parser)
nonoproxy_find_plain_lib(np_dep_mbedtls mbedtls/ssl.h mbedtls mbedx509 mbedcrypto)

# libsecret (Secret Service client) for keyring:// and bare-name credentials (SPEC §7). Without
# it, keyring references load as "unavailable" with "built without keyring support".
option(NONOPROXY_WITH_LIBSECRET "Load keyring credentials through libsecret" ON)
if(NONOPROXY_WITH_LIBSECRET)
  pkg_check_modules(LIBSECRET REQUIRED IMPORTED_TARGET libsecret-1)
endif()
