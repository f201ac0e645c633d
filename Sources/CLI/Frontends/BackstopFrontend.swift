import ArgumentParser
import BackupCore
import Foundation
import Targets

/// The generic `backstop` executable: its targets are declared in config, so a new
/// deployment needs no Swift code.
public enum BackstopFrontend: Frontend {
    public typealias BackupFlags = NoFlags
    public static let commandName = "backstop"
    public static let abstract = "Back up, verify and restore the targets declared in a config file."
    public static let configHelp = """
    Config keys (in --config FILE, default ./.env; environment variables override):
      BACKUP_DIR                      where backups go (relative paths are relative to the config file)
      TARGETS                         target names, in run order, e.g. "db code"
      TARGET_<NAME>_KIND              sqlite | archive
      KEEP_<TIER>, KEEP_<TIER>_DAYS   retention per tier (daily, weekly, monthly, or KEEP_TIERS)
      KEEP_MINIMUM                    good backups of each target that are never removed (default 1)
      sqlite:  TARGET_<NAME>_PATH, _COMPRESSION (gzip|zstd|none), _LEVEL
      archive: TARGET_<NAME>_PATHS, _BASE, _INCLUDE, _EXCLUDE, _COMPRESSION, _LEVEL, _THREADS, _ARTIFACT
    See Examples/ and the README for every key.
    """

    public static func deployment(config: Config) throws -> Deployment {
        let dir = try config.requirePath("BACKUP_DIR")
        return Deployment(backupDirectory: dir, targets: try TargetRegistry.buildAll(config: config),
                          retention: try RetentionPolicy.from(config: config))
    }

    public static func selection(_ flags: NoFlags) -> [String] { [] }
}
