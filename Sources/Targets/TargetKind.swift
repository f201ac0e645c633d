import BackupCore

/// A kind of target as config declares it: its name (`TARGET_<NAME>_KIND=<kindName>`), every
/// key it reads, and how it is built from them. Each kind declares this once, beside its code;
/// the registry, `--help`, `check` and the README test read it from there.
public protocol TargetKind: BackupTarget {
    /// The kind's name in config, e.g. `sqlite`.
    static var kindName: String { get }
    /// Every `TARGET_<NAME>_…` key the kind reads (without the common keys: `KIND` and the
    /// health thresholds).
    static var configKeys: [ConfigKey] { get }
    /// Builds the target from its keys; reads only declared keys.
    init(settings: TargetSettings) throws
}

extension TargetKind {
    /// The kind's name (the instance side of `kindName`).
    public var kind: String { Self.kindName }

    /// Builds a target of this kind (callable on an `any TargetKind.Type`).
    public static func make(settings: TargetSettings) throws -> any BackupTarget { try Self(settings: settings) }
}
