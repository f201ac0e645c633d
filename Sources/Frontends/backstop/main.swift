import CLI

RootCommand<BackstopFrontend>.runMain()
