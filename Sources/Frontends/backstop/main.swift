import CLI

// A multi-call binary, as busybox is: the Debian package installs the deployment executables
// as links to this one, and the name it was started under picks the frontend.
let name = CommandLine.arguments.first?.split(separator: "/").last.map(String.init) ?? ""
switch name {
case JournalFrontend.commandName: RootCommand<JournalFrontend>.runMain()
case SchedgenFrontend.commandName: RootCommand<SchedgenFrontend>.runMain()
default: RootCommand<BackstopFrontend>.runMain()
}
