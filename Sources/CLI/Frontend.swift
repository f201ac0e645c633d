import ArgumentParser
import BackupCore
import Foundation
import Targets

/// What an executable contributes on top of the shared command tree: its name, how its
/// targets are composed from config, and any flags of its own.
public protocol Frontend {
    /// Extra flags of the `backup` command (e.g. journal's `--db-only`).
    associatedtype BackupFlags: ParsableArguments

    /// The executable's name.
    static var commandName: String { get }
    /// One line for `--help`.
    static var abstract: String { get }
    /// The config keys, for `--help`.
    static var configHelp: String { get }

    /// The global keys the executable reads, by section (default: `GlobalKeys.sections`), for
    /// `check --keys` and the "did you mean" of `check`.
    static var keySections: [GlobalKeys.Section] { get }

    /// The target kinds its config may declare (default: every registered kind).
    static var targetKinds: [any TargetKind.Type] { get }

    /// Builds the deployment (backup directory and targets) from config.
    static func deployment(config: Config) throws -> Deployment

    /// The targets the extra backup flags select (empty: no restriction).
    static func selection(_ flags: BackupFlags) -> [String]

    /// The schedules `schedule install` and `daemon` use when the config changes none
    /// (name, cron expression, arguments).
    static func defaultSchedules(config: Config) -> [(name: String, cron: String, arguments: [String])]

    /// The subcommand (with its arguments) run when the command line names none, e.g.
    /// `["backup", "--prune"]` for an executable that replaces a `backup-all.sh`. Nil (the
    /// default): no subcommand prints the help, as before.
    static var defaultSubcommand: [String]? { get }

    /// Maps the keys of the script this executable replaces onto Backstop's (e.g. schedgen's
    /// `BACKUP_ALERT_EMAIL` onto `ALERT_EMAIL_TO`), refusing the ones it cannot honour with a line
    /// naming their replacement. Every command reads its config through this. Default: unchanged.
    static func adapt(config: Config) throws -> Config

    /// The files an earlier script left in the backup directory, listed, verified, restored and
    /// pruned as legacy sets (`legacy` command, `prune`). Nil (the default): none.
    static func legacyLayout(config: Config) throws -> (any LegacyLayout)?
}

extension Frontend {
    public static var defaultSubcommand: [String]? { nil }

    public static func adapt(config: Config) throws -> Config { config }

    public static func legacyLayout(config: Config) throws -> (any LegacyLayout)? { nil }

    /// Loads the config file (`required` when named explicitly) and adapts it (`adapt(config:)`).
    static func loadConfig(_ path: String) throws -> Config {
        try adapt(config: try Config.load(path: path, required: path != "./.env"))
    }

    /// The command line with `defaultSubcommand` put in front when it names no subcommand
    /// (only options such as `--config FILE`); `--help`, `-h` and `--version` stay as they are.
    static func withDefaultSubcommand(_ arguments: [String]) -> [String] {
        guard let subcommand = defaultSubcommand else { return arguments }
        if arguments.contains(where: { ["--help", "-h", "--version", "help"].contains($0) }) { return arguments }
        guard arguments.first.map({ $0.hasPrefix("-") }) ?? true else { return arguments }
        return subcommand + arguments
    }

    public static var keySections: [GlobalKeys.Section] { GlobalKeys.sections }

    public static var targetKinds: [any TargetKind.Type] { TargetRegistry.kinds }

    /// A daily backup at 02:00, pruning when retention is configured.
    public static func defaultSchedules(config: Config) -> [(name: String, cron: String, arguments: [String])] {
        let retention = (try? RetentionPolicy.from(config: config)) ?? nil
        return [("daily", "0 2 * * *", ["backup"] + (retention == nil ? [] : ["--prune"]))]
    }
}

/// A deployment: where backups go and what is backed up.
public struct Deployment: Sendable {
    /// The backup directory.
    public var backupDirectory: String
    /// The targets, in run order.
    public var targets: [any BackupTarget]
    /// What `prune` (and `backup --prune`) removes; nil keeps everything.
    public var retention: RetentionPolicy?

    /// Creates a deployment.
    public init(backupDirectory: String, targets: [any BackupTarget], retention: RetentionPolicy? = nil) {
        self.backupDirectory = backupDirectory
        self.targets = targets
        self.retention = retention
    }
}

/// Backup flags for executables that add none.
public struct NoFlags: ParsableArguments {
    public init() {}
}
