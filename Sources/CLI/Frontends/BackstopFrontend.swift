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
    /// Generated from the declarations: every global key and every kind's keys.
    public static var configHelp: String { ConfigKeysHelp.summary(sections: keySections, kinds: targetKinds) }

    public static func deployment(config: Config) throws -> Deployment {
        let dir = try config.requirePath("BACKUP_DIR")
        return Deployment(backupDirectory: dir, targets: try TargetRegistry.buildAll(config: config),
                          retention: try RetentionPolicy.from(config: config))
    }

    public static func selection(_ flags: NoFlags) -> [String] { [] }
}
