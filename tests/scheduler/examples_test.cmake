# Installs the current build into a fresh prefix, builds examples/ against it the way a user
# would (find_package(ember) with CMAKE_PREFIX_PATH), runs both programs on small inputs and
# checks their output. Run by ctest as ember_examples_against_install:
#   cmake -DEMBER_BUILD_DIR=... -DEMBER_SOURCE_DIR=... -DEMBER_WORK_DIR=... -DEMBER_GENERATOR=...
#         -DEMBER_CXX_COMPILER=... -P examples_test.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var EMBER_BUILD_DIR EMBER_SOURCE_DIR EMBER_WORK_DIR EMBER_GENERATOR EMBER_CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "examples_test.cmake needs -D${var}=...")
  endif()
endforeach()

set(prefix "${EMBER_WORK_DIR}/prefix")

# Cleans up whatever happens: every failure goes through here.
function(fail what output)
  file(REMOVE_RECURSE "${EMBER_WORK_DIR}")
  message(FATAL_ERROR "${what}\n${output}")
endfunction()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 240)
  if(NOT rc EQUAL 0)
    fail("${what} failed (${rc})" "${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${EMBER_WORK_DIR}")
file(MAKE_DIRECTORY "${EMBER_WORK_DIR}")

run_step("cmake --install" ${CMAKE_COMMAND} --install "${EMBER_BUILD_DIR}" --prefix "${prefix}")
if(NOT EXISTS "${prefix}/include/ember/scheduler/client.hpp")
  fail("the install has no ember/scheduler/client.hpp" "")
endif()

set(launcher "")
find_program(ccache_program ccache)
if(ccache_program)
  set(launcher "-DCMAKE_CXX_COMPILER_LAUNCHER=${ccache_program}")
endif()

foreach(example wordcount report)
  run_step("configuring examples/${example}"
    ${CMAKE_COMMAND} -S "${EMBER_SOURCE_DIR}/examples/${example}" -B "${EMBER_WORK_DIR}/${example}"
    -G "${EMBER_GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${EMBER_CXX_COMPILER}"
    -DCMAKE_BUILD_TYPE=Release ${launcher})
  run_step("building examples/${example}" ${CMAKE_COMMAND} --build "${EMBER_WORK_DIR}/${example}")
endforeach()

# The examples must run against the installed libraries, not the build tree's.
file(GLOB texts "${EMBER_SOURCE_DIR}/data/*.txt")
list(SORT texts)
run_step("running wordcount" "${EMBER_WORK_DIR}/wordcount/wordcount" --top 5 ${texts})
string(REPLACE "\n" ";" lines "${step_output}")
list(FILTER lines EXCLUDE REGEX "^$")
list(LENGTH lines count)
if(NOT count EQUAL 6)
  fail("wordcount printed ${count} lines instead of a header and 5 words" "${step_output}")
endif()
list(GET lines 0 header)
list(GET lines 1 first)
if(NOT header STREQUAL "word count" OR NOT first MATCHES "^the [0-9]+$")
  fail("unexpected wordcount output (the header, then 'the' as the most frequent word)" "${step_output}")
endif()
foreach(line IN LISTS lines)
  if(NOT line STREQUAL "word count" AND NOT line MATCHES "^[a-z0-9']+ [1-9][0-9]*$")
    fail("malformed wordcount line '${line}'" "${step_output}")
  endif()
endforeach()

run_step("running report" "${EMBER_WORK_DIR}/report/report" 20000)
if(NOT step_output MATCHES "total orders: 20000")
  fail("the report does not account for all 20000 orders" "${step_output}")
endif()
string(REGEX MATCHALL "\n(books|music|garden|toys|sports|kitchen|beauty|games|tools|office|outdoor|pets) "
       categories "${step_output}")
list(LENGTH categories category_count)
if(NOT category_count EQUAL 12)
  fail("the report lists ${category_count} categories instead of 12" "${step_output}")
endif()

file(REMOVE_RECURSE "${EMBER_WORK_DIR}")
message(STATUS "examples built against ${prefix} and checked")
