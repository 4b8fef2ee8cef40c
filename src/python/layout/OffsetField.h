// OffsetField: one offset member of a layout struct, plain or optional.
//
// Layout and DepthLayout keep offsets a version always has as uint32_t and
// those only some versions have as std::optional<uint32_t>. Tables that
// overlay, shift or compare offsets field by field (Layout.cpp,
// DepthLayout.cpp) list both kinds in one array through this one pointer
// type. It reads either kind as an optional, so a table treats a field a
// version lacks as absent (not as offset 0) when it compares or shifts it.
#pragma once

#include <cstdint>
#include <optional>

namespace stackpeek::python {

template <class Struct> class OffsetField {
public:
  constexpr OffsetField(uint32_t Struct::*plain) : plain_(plain) {}
  constexpr OffsetField(std::optional<uint32_t> Struct::*optional)
      : optional_(optional) {}

  std::optional<uint32_t> get(const Struct &s) const {
    if (plain_)
      return s.*plain_;
    return s.*optional_;
  }
  void set(Struct &s, uint32_t value) const {
    if (plain_)
      s.*plain_ = value;
    else
      s.*optional_ = value;
  }

private:
  uint32_t Struct::*plain_ = nullptr;
  std::optional<uint32_t> Struct::*optional_ = nullptr;
};

} // namespace stackpeek::python
