// BuiltinTables: what VersionLayouts.cpp sees of Layout.cpp and DepthLayout.cpp.
//
// Each supported minor version has a built-in Layout and DepthLayout, each
// written as the previous version's plus what changed, in the file of its
// struct. VersionLayouts.cpp lists them side by side, one row a version, so
// that a version is added (or its two tables picked) in one place; this
// header declares the pieces that row and the debug-offsets path need.
// Other callers use VersionLayouts.h.
#pragma once

#include <cstdint>

#include "llvm/Support/Error.h"
#include "python/layout/DepthLayout.h"
#include "python/layout/Layout.h"

namespace stackpeek::python {

class DebugOffsets;

namespace builtin {

Layout layout27(), layout36(), layout37(), layout38(), layout39(), layout310(),
    layout311(), layout312(), layout313(), layout314(), layout315();
DepthLayout depth27(), depth36(), depth37(), depth38(), depth39(), depth310(),
    depth311(), depth312(), depth313(), depth314(), depth315();

/// Sets the copy sizes (Layout::runtimeSize, interpSize, ...) from the
/// offsets; the builders above leave them to this.
void computeCopySizes(Layout &l);

/// `base` with every offset `table` publishes overlaid, and the fields it
/// does not cover adjusted for a free-threaded build's larger object
/// headers. Fails when ob_type is implausible.
llvm::Expected<Layout> overlayDebugOffsets(const DebugOffsets &table, const Layout &base);

/// `base` with every field `table` covers taken from there, and the object
/// fields it does not cover moved by `headerShift`: how much further ob_type
/// is than in the built-in Layout.
DepthLayout overlayDebugOffsets(const DebugOffsets &table, DepthLayout base,
                                uint32_t headerShift);

} // namespace builtin

} // namespace stackpeek::python
