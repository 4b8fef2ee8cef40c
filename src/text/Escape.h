// Escape: making target-chosen text safe to print.
//
// Thread names, file names, function names and values come from the target
// and may contain terminal escape sequences (which could rewrite the user's
// screen or worse), other control characters, or bytes that are not UTF-8.
// Text output shows them as visible escapes; JSON output must be valid UTF-8,
// so invalid sequences become U+FFFD (the Unicode replacement character, the
// standard marker for "undecodable bytes were here").
#pragma once

#include <string>

#include "llvm/ADT/StringRef.h"

namespace stackpeek {

/// For terminals and text files: control characters (C0, DEL, C1) become
/// \n, \t, \xNN or \u{NN}; invalid UTF-8 bytes become \xNN; backslashes are
/// kept as they are. Valid printable UTF-8 passes through.
std::string escapeForTerminal(llvm::StringRef text);

/// For JSON: replaces invalid UTF-8 with U+FFFD (llvm::json escapes the rest).
std::string sanitizeUtf8(llvm::StringRef text);

} // namespace stackpeek
