// FlamegraphWriter: a self-contained interactive flame graph, as one SVG.
//
// Domain facts: a flame graph merges all samples into a tree of call paths
// (root = all samples, children = callees); each node is a box whose width
// is proportional to the samples that passed through it, stacked upwards
// from the root, siblings sorted by name (as flamegraph.pl does), so x has
// no time meaning. The file must open in any browser with no network, so
// the script and style are inline; labels come from the target, so every
// piece of text is XML-escaped after control characters were made visible
// (XML 1.0 cannot carry most control characters at all, even as &#..;).
//
// Each frame is `<g class="f" data-n data-x data-d data-p data-k>`: exact
// sample count, offset of its first sample within the root (in samples),
// depth, index of its parent's <g>, and kind (python/native/synthetic/root).
// The script zooms and searches with these integers, and tests read them
// to check the widths. Boxes narrower than 1/20000 of the root (0.05 px at
// full width) are left out, as flamegraph.pl does, to bound the file size.
#include <algorithm>
#include <map>

#include "llvm/Support/Format.h"

#include "profile/ProfileWriterSupport.h"

namespace stackpeek::profile_writer {

namespace {

constexpr double kWidth = 1200, kPad = 10, kFrameHeight = 16, kTop = 56, kFontSize = 12;
constexpr double kCharWidth = kFontSize * 0.59; // average Verdana glyph width
constexpr uint64_t kMinFraction = 20000;        // see the file comment

struct Node {
  std::optional<FrameId> frame; // none for the root
  uint32_t parent = 0, depth = 0;
  uint64_t samples = 0, offset = 0;
  std::map<FrameId, uint32_t> children;
};

class FlameTree {
public:
  explicit FlameTree(const Profile &profile);
  std::vector<Node> nodes;
  uint32_t maxDepth = 0;

private:
  void add(const std::vector<FrameId> &stack, uint64_t count);
  void layout(uint32_t node, const Profile &profile);
};

FlameTree::FlameTree(const Profile &profile) {
  nodes.emplace_back();
  std::vector<uint64_t> counts = samplesPerStack(profile);
  for (StackId id = 0; id < profile.stacks.size(); ++id)
    if (counts[id])
      add(profile.stacks[id], counts[id]);
  layout(0, profile);
}

void FlameTree::add(const std::vector<FrameId> &stack, uint64_t count) {
  uint32_t node = 0;
  nodes[0].samples += count;
  for (auto it = stack.rbegin(); it != stack.rend(); ++it) { // root is outermost
    auto [child, inserted] = nodes[node].children.try_emplace(*it, nodes.size());
    if (inserted) {
      Node n;
      n.frame = *it, n.parent = node, n.depth = nodes[node].depth + 1;
      maxDepth = std::max(maxDepth, n.depth);
      nodes.push_back(std::move(n)); // invalidates references into nodes
    }
    node = child->second;
    nodes[node].samples += count;
  }
}

// Children are placed left to right by label, starting at the parent's
// offset; a parent's samples that end in it leave a gap on the right.
void FlameTree::layout(uint32_t node, const Profile &profile) {
  std::vector<std::pair<std::string, uint32_t>> order;
  for (const auto &[frame, child] : nodes[node].children)
    order.emplace_back(plainLabel(profile, frame), child);
  std::sort(order.begin(), order.end());
  uint64_t offset = nodes[node].offset;
  for (const auto &[label, child] : order) {
    nodes[child].offset = offset;
    offset += nodes[child].samples;
    layout(child, profile);
  }
}

// XML text and attribute values: the input is already plainText (valid
// UTF-8, no control characters); U+FFFE and U+FFFF are not XML characters.
std::string xmlEscape(llvm::StringRef text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else if (c == '\'') out += "&apos;";
    else if (text.substr(i).startswith("\xef\xbf\xbe") || text.substr(i).startswith("\xef\xbf\xbf"))
      out += "\xef\xbf\xbd", i += 2;
    else out += c;
  }
  return out;
}

// The label cut to what fits in `width` pixels, on a UTF-8 boundary.
std::string fitLabel(const std::string &label, double width) {
  size_t fits = width > 0 ? static_cast<size_t>((width - 4) / kCharWidth) : 0;
  if (fits < 3)
    return "";
  size_t codepoints = 0, cut = label.size();
  for (size_t i = 0; i < label.size(); ++i)
    if ((static_cast<uint8_t>(label[i]) & 0xc0) != 0x80 && ++codepoints == fits - 1)
      cut = i; // where ".." would start if the label is too long
  if (codepoints <= fits)
    return label;
  return label.substr(0, cut) + "..";
}

uint32_t fnv1a(llvm::StringRef s) {
  uint32_t h = 2166136261u;
  for (char c : s)
    h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}

// Warm for native code, green for Python, blue-grey for labels; the label's
// hash varies the shade so neighbours stay distinguishable.
std::string colour(llvm::StringRef kind, llvm::StringRef label) {
  uint32_t h = fnv1a(label);
  int a = h % 55, b = (h >> 8) % 55;
  int r, g, bl;
  if (kind == "python") r = 110 + a, g = 190 + b / 2, bl = 70 + b / 2;
  else if (kind == "native") r = 225 + a / 2, g = 90 + a + b, bl = 40 + b / 2;
  else if (kind == "synthetic") r = 140 + a / 2, g = 160 + a / 2, bl = 200 + b / 2;
  else r = 200, g = 200, bl = 200;
  return "rgb(" + std::to_string(r) + "," + std::to_string(g) + "," + std::to_string(bl) + ")";
}

// Two decimals at most, no trailing zeros ("1200", "12.5").
std::string number(double v) {
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format("%.2f", v);
  while (s.back() == '0')
    s.pop_back();
  if (s.back() == '.')
    s.pop_back();
  return s;
}

const char *kStyle = R"css(
text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }
g.f text { pointer-events: none; }
g.f rect { stroke: #fff; stroke-width: 0.5; cursor: pointer; }
g.f:hover rect { stroke: #000; }
.button { cursor: pointer; fill: #1a4d8f; text-decoration: underline; }
.heading { font-size: 17px; }
)css";

// Zoom, hover details and search, driven by the data-* integers.
const char *kScript = R"js(
"use strict";
var svg = document.querySelector("svg[data-width]"); // also when inlined in HTML
var W = +svg.getAttribute("data-width"), PAD = +svg.getAttribute("data-pad");
var CHAR = +svg.getAttribute("data-char-width");
var frames = [], total = 0, zoomed = null, searching = null;
function attr(g, name) { return +g.getAttribute("data-" + name); }
function fit(label, width) {
  var n = Math.floor((width - 4) / CHAR);
  if (n < 3) return "";
  return label.length <= n ? label : label.slice(0, n - 2) + "..";
}
function place(f, x, w, hidden, faded) {
  f.g.style.display = hidden ? "none" : "";
  f.g.style.opacity = faded ? "0.5" : "";
  if (hidden) return;
  f.rect.setAttribute("x", x.toFixed(2));
  f.rect.setAttribute("width", w.toFixed(2));
  f.text.setAttribute("x", (x + 3).toFixed(2));
  f.text.textContent = fit(f.label, w);
}
function zoom(z) {
  zoomed = z;
  var scale = (W - 2 * PAD) / z.n;
  document.getElementById("unzoom").style.display = z.d === 0 ? "none" : "";
  frames.forEach(function (f) {
    var inside = f.x >= z.x && f.x + f.n <= z.x + z.n && f.d >= z.d;
    var above = f.d < z.d && f.x <= z.x && f.x + f.n >= z.x + z.n;
    if (inside) place(f, PAD + (f.x - z.x) * scale, f.n * scale, false, false);
    else place(f, PAD, W - 2 * PAD, !above, above);
  });
}
function share(n) { return n + " samples, " + (100 * n / total).toFixed(2) + "%"; }
function search(term) {
  searching = term;
  var needle = term === null ? null : term.toLowerCase(), spans = [];
  frames.forEach(function (f) {
    var hit = needle !== null && needle !== "" && f.label.toLowerCase().indexOf(needle) >= 0;
    f.rect.setAttribute("fill", hit ? "rgb(230,0,230)" : f.fill);
    if (hit) spans.push([f.x, f.x + f.n]);
  });
  spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
  var matched = 0, end = -1;  // union of the spans: nested hits count once
  spans.forEach(function (s) {
    if (s[1] <= end) return;
    matched += s[1] - Math.max(s[0], end);
    end = s[1];
  });
  document.getElementById("matched").textContent =
    term === null ? "" : "Matched \u201c" + term + "\u201d: " + share(matched);
  document.getElementById("search").textContent = term === null ? "Search" : "Clear search";
}
function askSearch() {
  if (searching !== null) { search(null); return; }
  var term = window.prompt("Highlight frames containing (case-insensitive):", "");
  if (term) search(term);
}
function frameOf(target) { return target.closest ? target.closest("g.f") : null; }
function init() {
  var gs = document.querySelectorAll("g.f");
  for (var i = 0; i < gs.length; i++) {
    var g = gs[i], rect = g.querySelector("rect");
    var f = { g: g, rect: rect, text: g.querySelector("text"), fill: rect.getAttribute("fill"),
              label: g.querySelector("title").textContent.split("\n")[0],
              n: attr(g, "n"), x: attr(g, "x"), d: attr(g, "d") };
    g.frame = f;
    frames.push(f);
  }
  total = frames.length ? frames[0].n : 0;
  var details = document.getElementById("details");
  svg.addEventListener("mouseover", function (e) {
    var g = frameOf(e.target);
    if (g) details.textContent = g.frame.label + " (" + share(g.frame.n) + ")";
  });
  svg.addEventListener("mouseout", function (e) { if (frameOf(e.target)) details.textContent = " "; });
  svg.addEventListener("click", function (e) {
    var g = frameOf(e.target);
    if (g) zoom(g.frame);
    else if (e.target.id === "unzoom") zoom(frames[0]);
    else if (e.target.id === "search") askSearch();
  });
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "f") { e.preventDefault(); searching = null; askSearch(); }
    else if (e.key === "Escape") { search(null); zoom(frames[0]); }
  });
  if (frames.length) zoom(frames[0]);
}
window.addEventListener("load", init);
)js";

class SvgWriter {
public:
  SvgWriter(const Profile &profile, llvm::raw_ostream &out) : p_(profile), out_(out), tree_(profile) {}
  void write(const std::string &title);

private:
  void header(const std::string &title, double height);
  void frame(uint32_t index, const std::vector<uint32_t> &gIndex);
  std::string labelOf(const Node &n) const {
    return n.frame ? plainLabel(p_, *n.frame) : "all";
  }
  llvm::StringRef kindOf(const Node &n) const {
    return n.frame ? frameKindName(p_.frames[*n.frame]) : "root";
  }

  const Profile &p_;
  llvm::raw_ostream &out_;
  FlameTree tree_;
  double scale_ = 0;
  uint64_t total_ = 0;
};

void SvgWriter::header(const std::string &title, double height) {
  std::string w = number(kWidth), h = number(height), pad = number(kPad);
  std::string right = number(kWidth - kPad), bottom = number(height - 10);
  out_ << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
       << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << w
       << "\" height=\"" << h << "\" viewBox=\"0 0 " << w << " " << h << "\" data-width=\"" << w
       << "\" data-pad=\"" << pad << "\" data-char-width=\"" << number(kCharWidth)
       << "\" data-total-samples=\"" << total_ << "\">\n"
       << "<style type=\"text/css\"><![CDATA[" << kStyle << "]]></style>\n"
       << "<script type=\"text/ecmascript\"><![CDATA[" << kScript << "]]></script>\n"
       << "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#f8f8f4\"/>\n"
       << "<text class=\"heading\" x=\"" << number(kWidth / 2)
       << "\" y=\"24\" text-anchor=\"middle\">" << xmlEscape(title) << "</text>\n"
       << "<text id=\"unzoom\" class=\"button\" x=\"" << pad
       << "\" y=\"24\" style=\"display:none\">Reset zoom</text>\n"
       << "<text id=\"search\" class=\"button\" x=\"" << right
       << "\" y=\"24\" text-anchor=\"end\">Search</text>\n"
       << "<text id=\"details\" x=\"" << pad << "\" y=\"" << bottom << "\"> </text>\n"
       << "<text id=\"matched\" x=\"" << right << "\" y=\"" << bottom
       << "\" text-anchor=\"end\"></text>\n";
}

void SvgWriter::frame(uint32_t index, const std::vector<uint32_t> &gIndex) {
  const Node &n = tree_.nodes[index];
  std::string label = labelOf(n);
  llvm::StringRef kind = kindOf(n);
  double x = kPad + n.offset * scale_, w = n.samples * scale_;
  double y = kTop + (tree_.maxDepth - n.depth) * kFrameHeight;
  double pct = total_ ? 100.0 * n.samples / total_ : 0;
  out_ << "<g class=\"f\" data-n=\"" << n.samples << "\" data-x=\"" << n.offset << "\" data-d=\""
       << n.depth << "\" data-p=\"" << (index ? std::to_string(gIndex[n.parent]) : "")
       << "\" data-k=\"" << kind << "\">"
       << "<title>" << xmlEscape(label) << "\n" << n.samples << " samples, " << number(pct)
       << "%</title><rect x=\"" << number(x) << "\" y=\"" << number(y) << "\" width=\""
       << number(w) << "\" height=\"" << number(kFrameHeight - 1) << "\" fill=\"" << colour(kind, label)
       << "\"/><text x=\"" << number(x + 3) << "\" y=\"" << number(y + kFrameHeight - 4.5) << "\">"
       << xmlEscape(fitLabel(label, w)) << "</text></g>\n";
}

void SvgWriter::write(const std::string &title) {
  uint64_t total = total_ = tree_.nodes[0].samples;
  scale_ = total ? (kWidth - 2 * kPad) / total : 0;
  double height = kTop + (tree_.maxDepth + 1) * kFrameHeight + 30;
  header(title, height);
  // Parents before children (node order), skipping tiny boxes; gIndex maps
  // a node to the position of its <g>, which data-p refers to.
  std::vector<uint32_t> gIndex(tree_.nodes.size(), 0);
  std::vector<bool> shown(tree_.nodes.size(), false);
  uint32_t written = 0;
  for (uint32_t i = 0; i < tree_.nodes.size(); ++i) {
    const Node &n = tree_.nodes[i];
    if (i != 0 && (!shown[n.parent] || n.samples * kMinFraction < total))
      continue;
    if (total == 0 && i != 0)
      continue;
    shown[i] = true, gIndex[i] = written++;
    frame(i, gIndex);
  }
  out_ << "</svg>\n";
}

} // namespace

llvm::Error writeFlamegraph(const Profile &profile, llvm::raw_ostream &out,
                            const ProfileWriteOptions &options) {
  SvgWriter(profile, out).write(plainText(options.title));
  return llvm::Error::success();
}

} // namespace stackpeek::profile_writer
