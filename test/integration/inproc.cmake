# In-process C integration tests (test_inproc_*.c): start the proxy through the public API and
# drive it with real sockets on 127.0.0.1 port 0.
file(GLOB NP_INPROC_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_inproc_*.c)
add_library(np_test_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/harness.c
                                   ${CMAKE_CURRENT_LIST_DIR}/loopsrv.c)
target_link_libraries(np_test_harness PUBLIC nonoproxy::nonoproxy)
target_compile_definitions(np_test_harness PRIVATE _GNU_SOURCE)
nonoproxy_target_warnings(np_test_harness)
foreach(src IN LISTS NP_INPROC_TESTS)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_link_libraries(${name} PRIVATE np_test_harness PkgConfig::CMOCKA)
  nonoproxy_target_warnings(${name})
  # The library's 8 KiB frame cap protects its connection threads; a test's main thread has the
  # default 8 MiB stack and holds whole answers in locals.
  target_compile_options(${name} PRIVATE -Wframe-larger-than=262144)
  add_test(NAME integration.${name} COMMAND ${name})
  set_tests_properties(integration.${name} PROPERTIES LABELS integration TIMEOUT 300)
endforeach()
# The allocation-failure test drives lib/alloc.h's test hook, like the unit tests do.
target_include_directories(test_inproc_alloc PRIVATE ${PROJECT_SOURCE_DIR}/lib)
# The splice test forces the buffer relay through lib/pump.h's test hook np_pump_splice_disable().
target_include_directories(test_inproc_splice PRIVATE ${PROJECT_SOURCE_DIR}/lib)
# The pool test shortens the workers' linger through lib/listener.h's test hook.
target_include_directories(test_inproc_pool PRIVATE ${PROJECT_SOURCE_DIR}/lib)
