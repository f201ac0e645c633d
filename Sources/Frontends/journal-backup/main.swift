import CLI

RootCommand<JournalFrontend>.runMain()
