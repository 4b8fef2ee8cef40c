// VersionLayouts: the Layout and DepthLayout of one CPython build, picked
// together.
//
// A plain stack needs a Layout; locals, exceptions and tasks a DepthLayout.
// Both depend on the minor version, and on 3.13+ both take what the
// target's `_Py_DebugOffsets` publishes over their built-in values. Picking
// them in one place (one row a version in VersionLayouts.cpp) keeps the two
// from disagreeing about which version, or which debug offsets, a process
// has: Locate asks for both at once on either path.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "llvm/Support/Error.h"
#include "python/layout/DepthLayout.h"
#include "python/layout/Layout.h"

namespace stackpeek::python {

class DebugOffsets;

struct VersionLayouts {
  Layout layout;
  DepthLayout depth;
};

/// The built-in tables of `version`'s minor version, stamped with
/// `version`; nullopt if unsupported.
std::optional<VersionLayouts> builtinLayouts(const PythonVersion &version);

/// The built-in tables of the table's minor version (or of the newest one
/// known, for a newer minor version) with every offset the target published
/// overlaid, and the fields the table does not cover adjusted for a
/// free-threaded build's larger object headers. Fails when the table lacks
/// what a stack walk needs.
llvm::Expected<VersionLayouts> layoutsFromDebugOffsets(const DebugOffsets &table);

/// Every major.minor version with tables, oldest first ("2.7", "3.6", ...).
std::vector<std::string> supportedVersions();

/// The Layout halves of the above, for callers that need no DepthLayout.
std::optional<Layout> builtinLayout(int major, int minor);
llvm::Expected<Layout> layoutFromDebugOffsets(const DebugOffsets &table);

} // namespace stackpeek::python
