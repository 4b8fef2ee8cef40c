// The one table of supported CPython versions: each row names a version's
// built-in Layout and DepthLayout, so adding a version is one row here (plus
// the two builders, see BuiltinTables.h), and both paths of Locate (the
// debug offsets of 3.13+, the built-in tables before) start from the same row.
#include "python/layout/VersionLayouts.h"

#include "python/layout/BuiltinTables.h"
#include "python/layout/DebugOffsets.h"

namespace stackpeek::python {

namespace {

struct VersionRow {
  int major, minor;
  Layout (*layout)();
  DepthLayout (*depth)();
};

constexpr VersionRow kVersions[] = {
    {2, 7, builtin::layout27, builtin::depth27},
    {3, 6, builtin::layout36, builtin::depth36},
    {3, 7, builtin::layout37, builtin::depth37},
    {3, 8, builtin::layout38, builtin::depth38},
    {3, 9, builtin::layout39, builtin::depth39},
    {3, 10, builtin::layout310, builtin::depth310},
    {3, 11, builtin::layout311, builtin::depth311},
    {3, 12, builtin::layout312, builtin::depth312},
    {3, 13, builtin::layout313, builtin::depth313},
    {3, 14, builtin::layout314, builtin::depth314},
    {3, 15, builtin::layout315, builtin::depth315},
};

const VersionRow *rowFor(int major, int minor) {
  for (const VersionRow &row : kVersions)
    if (row.major == major && row.minor == minor)
      return &row;
  return nullptr;
}

} // namespace

std::vector<std::string> supportedVersions() {
  std::vector<std::string> out;
  for (const VersionRow &row : kVersions)
    out.push_back(std::to_string(row.major) + "." + std::to_string(row.minor));
  return out;
}

std::optional<VersionLayouts> builtinLayouts(const PythonVersion &version) {
  const VersionRow *row = rowFor(version.major, version.minor);
  if (!row)
    return std::nullopt;
  VersionLayouts v{row->layout(), row->depth()};
  v.layout.version = version;
  builtin::computeCopySizes(v.layout);
  return v;
}

llvm::Expected<VersionLayouts> layoutsFromDebugOffsets(const DebugOffsets &table) {
  int minor = table.orderGuessed ? newestDebugOffsetsMinor() : table.version.minor;
  std::optional<VersionLayouts> base = builtinLayouts({3, minor, 0, 0});
  if (!base)
    return invalidDebugOffsets("no table for CPython " + table.version.toString());
  auto layout = builtin::overlayDebugOffsets(table, base->layout);
  if (!layout)
    return layout.takeError();
  uint32_t headerShift = layout->obType - base->layout.obType;
  DepthLayout depth = builtin::overlayDebugOffsets(table, base->depth, headerShift);
  return VersionLayouts{std::move(*layout), std::move(depth)};
}

std::optional<Layout> builtinLayout(int major, int minor) {
  if (auto v = builtinLayouts({major, minor, 0, 0}))
    return v->layout;
  return std::nullopt;
}

llvm::Expected<Layout> layoutFromDebugOffsets(const DebugOffsets &table) {
  auto v = layoutsFromDebugOffsets(table);
  if (!v)
    return v.takeError();
  return v->layout;
}

} // namespace stackpeek::python
