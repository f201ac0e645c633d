import CLI

RootCommand<SchedgenFrontend>.runMain()
