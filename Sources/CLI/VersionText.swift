import BackupCore
import Targets

/// What `--version` prints: Backstop's version, the git commit the binary was built from,
/// and the versions of the C libraries it runs with (read from the libraries themselves).
enum VersionText {
    static func text(commandName: String) -> String {
        """
        \(commandName) \(backstopVersion) (commit \(backstopBuildCommit))
        libpq \(PostgresServer.versionText(libpqVersion))
        \(libarchiveVersion)
        libcurl \(Curl.libraryVersion)
        SQLite \(SQLiteDatabase.version)
        """
    }
}
