// What `stackpeek --version` says: the version (the project's, with where in
// git it was built from), what it was built with, and which CPython
// versions it reads (from the layout tables themselves, so it cannot lag).
#include "Commands.h"

#include <libunwind.h>

#include "llvm/Config/llvm-config.h"

#include "python/layout/VersionLayouts.h"

namespace stackpeek::tool {

std::string versionText() {
  std::string pythons;
  for (const std::string &v : python::supportedVersions())
    pythons += (pythons.empty() ? "" : ", ") + v;
  return std::string("stackpeek ") + STACKPEEK_VERSION + "\n" +
         "built with LLVM " LLVM_VERSION_STRING " and libunwind " +
         std::to_string(UNW_VERSION_MAJOR) + "." + std::to_string(UNW_VERSION_MINOR) + "." +
         std::to_string(UNW_VERSION_EXTRA) + "\n" + "reads CPython " + pythons +
         " (free-threaded builds from 3.13; libpython shared or linked in)";
}

} // namespace stackpeek::tool
