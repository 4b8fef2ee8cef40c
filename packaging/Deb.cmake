# The .deb: `cpack -G DEB` in a build directory (scripts/package does it).
#
# LLVM is linked statically (its .a archives), so Depends lists only the
# shared libraries the binary really loads, found by dpkg-shlibdeps. The
# version is the project's (STACKPEEK_FULL_VERSION, set once in the top
# CMakeLists.txt); the changelog entry and the copyright file are the ones
# Debian policy asks every package to carry.
set(STACKPEEK_MAINTAINER "stackpeek developers <stackpeek-dev@lists.stackpeek.dev>")

# The changelog's date: the commit's, so that the same sources give the same
# package.
set(STACKPEEK_GIT_COMMIT "an unknown commit")
set(STACKPEEK_CHANGELOG_DATE "Thu, 01 Jan 2026 00:00:00 +0000")
if(GIT_FOUND AND EXISTS ${CMAKE_SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} log -1 --format=%h%n%aD
                  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} OUTPUT_VARIABLE commit_info
                  RESULT_VARIABLE commit_rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(commit_rc EQUAL 0)
    string(REPLACE "\n" ";" commit_info "${commit_info}")
    list(GET commit_info 0 STACKPEEK_GIT_COMMIT)
    list(GET commit_info 1 STACKPEEK_CHANGELOG_DATE)
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/changelog.in ${CMAKE_BINARY_DIR}/packaging/changelog @ONLY)
# A native package (its version has no Debian revision) calls it changelog.gz.
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/packaging/changelog.gz
  COMMAND ${STACKPEEK_GZIP} -9nkf ${CMAKE_BINARY_DIR}/packaging/changelog
  DEPENDS ${CMAKE_BINARY_DIR}/packaging/changelog
  VERBATIM)
add_custom_target(stackpeek_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/packaging/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/packaging/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME stackpeek)
set(CPACK_PACKAGE_VERSION ${STACKPEEK_FULL_VERSION})
set(CPACK_PACKAGE_CONTACT ${STACKPEEK_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "every thread's native and Python stack of a running process")
# The long description; CPack puts the summary above it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "stackpeek shows what a running process is doing without changing or
restarting it: it pauses the process with ptrace for as long as copying its
registers and stacks takes, then prints every thread's stack, C/C++ and
Python frames merged. It also samples processes into flame graphs and
other profiles, and runs commands in CI, dumping their whole process tree
when they hang.")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
include(CPack)
