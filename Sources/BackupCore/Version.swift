import CShims

/// Backstop's version: the one place it is written. `--version`, manifests, the HTTP user
/// agent and the Debian package (`scripts/package` reads it from this line) all use it.
public let backstopVersion = "0.3.0"

/// The git commit this binary was built from, or `unknown` for a plain `swift build`.
/// `scripts/package` links an object defining the commit over CShims' weak default, so
/// nothing is read from the source tree or the environment at run time.
public var backstopBuildCommit: String { String(cString: backstop_build_commit_id()) }
