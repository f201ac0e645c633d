import BackupCore
import Foundation
import Targets

/// The config keys as `--help`, `check --keys` and `check` show them, generated from the
/// declarations (`GlobalKeys`, each kind's `configKeys`): no key list is kept here.
enum ConfigKeysHelp {
    /// The compact list for `--help`: every key's name, by section and kind.
    static func summary(sections: [GlobalKeys.Section], kinds: [any TargetKind.Type]) -> String {
        var lines = ["Config keys (--config FILE, default ./.env; the environment overrides):"]
        for section in sections {
            lines += ConfigKey.wrapped([section.title + ":"] + section.keys.map(\.name), indent: "  ")
            if section.title == "deployment" && !kinds.isEmpty {
                lines.append("  TARGET_<NAME>_KIND: one of these kinds, then its TARGET_<NAME>_… keys:")
                for kind in kinds {
                    lines += ConfigKey.wrapped(["\(kind.kindName):"] + kind.configKeys.map { "_" + $0.name }, indent: "    ")
                }
                lines += ConfigKey.wrapped(["every kind:"] + TargetSettings.commonKeys.filter { $0.name != "KIND" }.map { "_" + $0.name }, indent: "    ")
            }
        }
        lines.append("Durations are written 30s, 90m, 26h, 7d. `check --keys` gives each key's")
        lines.append("type, default and meaning; the README documents every key.")
        return lines.joined(separator: "\n")
    }

    /// Every key with its type, default and one-line help, for `check --keys`.
    static func full(sections: [GlobalKeys.Section], kinds: [any TargetKind.Type]) -> String {
        var lines: [String] = []
        for section in sections {
            lines.append(section.title + ":")
            lines += section.keys.map { "  " + $0.line() }
        }
        for kind in kinds {
            lines.append("TARGET_<NAME>_KIND=\(kind.kindName):")
            lines += TargetRegistry.keys(of: kind).filter { $0.name != "KIND" }.map { "  " + $0.line(prefix: "TARGET_<NAME>_", width: 34) }
        }
        return lines.joined(separator: "\n")
    }

    /// Keys in the config file that no declaration knows but that are within two edits of one
    /// (a typo such as BACKUP_DRI): one warning each. Only the file's keys count (the
    /// environment holds everything else on the machine), and `TARGET_` keys are the
    /// registry's (it refuses unknown ones).
    static func nearMisses(config: Config, sections: [GlobalKeys.Section]) -> [Finding] {
        let declared = sections.flatMap(\.keys)
        let names = declared.filter { !$0.isPattern }.map(\.name)
        return config.fileValues.keys.sorted().compactMap { key -> Finding? in
            guard !key.hasPrefix("TARGET_"), GlobalKeys.declaration(of: key, among: declared) == nil,
                  let near = ConfigKey.nearest(to: key, among: names) else { return nil }
            return Finding(.warning, target: "-", "config: unknown key \(key) in \(config.file) (did you mean \(key) → \(near)?)")
        }
    }
}
