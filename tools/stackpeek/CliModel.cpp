// The command line as data: every command, option, argument and example,
// printed as JSON by `stackpeek --cli-model` (not listed in --help). The man
// page and the shell completions are generated from it at build time
// (tools/cli-docs/generate.py), from the same definitions --help prints, so
// they cannot drift from it.
#include "Commands.h"

#include "llvm/Support/JSON.h"

namespace stackpeek::tool {

namespace {

void writeOption(llvm::json::OStream &j, const CLI::Option &opt) {
  j.object([&] {
    j.attribute("name", opt.get_name(false, true));
    j.attributeArray("long", [&] {
      for (const std::string &n : opt.get_lnames())
        j.value("--" + n);
    });
    j.attributeArray("short", [&] {
      for (const std::string &n : opt.get_snames())
        j.value("-" + n);
    });
    j.attribute("positional", opt.get_positional() && !opt.nonpositional());
    j.attribute("flag", opt.get_type_name().empty() && opt.nonpositional());
    j.attribute("type", opt.get_type_name());
    j.attribute("required", opt.get_required());
    j.attribute("repeatable", opt.get_items_expected_max() > 1);
    j.attribute("default", opt.get_default_str());
    j.attribute("help", opt.get_description());
  });
}

void writeCommand(llvm::json::OStream &j, const CLI::App &app) {
  j.object([&] {
    j.attribute("name", app.get_name());
    j.attribute("description", app.get_description());
    j.attribute("footer", app.get_footer());
    j.attributeArray("options", [&] {
      for (const CLI::Option *opt : app.get_options())
        if (!opt->get_group().empty()) // an empty group hides an option
          writeOption(j, *opt);
    });
    j.attributeArray("commands", [&] {
      for (const CLI::App *sub : app.get_subcommands([](const CLI::App *) { return true; }))
        writeCommand(j, *sub);
    });
  });
}

} // namespace

void printCliModel(const CLI::App &app, llvm::raw_ostream &out) {
  llvm::json::OStream j(out, 2);
  writeCommand(j, app);
  out << "\n";
}

} // namespace stackpeek::tool
