import Foundation

/// A file's permission bits and owner: what a restore puts back on a file it replaces, or, for a
/// new file, what the backup recorded (so an application reading its data as `www-data` can
/// still read it afterwards). Backup files themselves stay 0600.
public struct FileOwnership: Codable, Sendable, Equatable {
    /// Permission bits (`st_mode & 07777`).
    public var mode: mode_t
    /// Owner and group ids.
    public var uid: uid_t
    public var gid: gid_t

    /// Creates an ownership record.
    public init(mode: mode_t, uid: uid_t, gid: gid_t) {
        self.mode = mode & 0o7777
        self.uid = uid
        self.gid = gid
    }

    /// The ownership of the file at `path` (following symlinks), or nil if it cannot be read.
    public init?(of path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        self.init(mode: st.st_mode, uid: st.st_uid, gid: st.st_gid)
    }

    /// The facts a backup records: `fileMode` (octal text such as "0644"), `uid`, `gid`, and
    /// `owner`/`group` names where the system knows them.
    public var facts: [String: JSONValue] {
        var facts: [String: JSONValue] = ["fileMode": .string(modeText), "uid": .number(Double(uid)), "gid": .number(Double(gid))]
        if let n = Self.userName(uid) { facts["owner"] = .string(n) }
        if let n = Self.groupName(gid) { facts["group"] = .string(n) }
        return facts
    }

    /// Reads what `facts` wrote; nil if any of mode, uid or gid is missing or malformed. A
    /// manifest is untrusted input: set-user-id, set-group-id and sticky bits are dropped, and
    /// so is write permission for others (the mode is masked with 0775).
    public init?(facts: [String: JSONValue]) {
        guard let text = facts["fileMode"]?.stringValue, let mode = mode_t(text, radix: 8), mode <= 0o7777,
              let uid = facts["uid"]?.numberValue, let gid = facts["gid"]?.numberValue,
              uid >= 0, gid >= 0, uid < 4_294_967_295, gid < 4_294_967_295, uid == uid.rounded(), gid == gid.rounded()
        else { return nil }
        self.init(mode: mode & 0o775, uid: uid_t(uid), gid: gid_t(gid))
    }

    /// `0644`.
    public var modeText: String {
        let octal = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - octal.count)) + octal
    }

    /// `mode 0644, owner www-data:www-data (33:33)`.
    public var description: String {
        let names = "\(Self.userName(uid) ?? String(uid)):\(Self.groupName(gid) ?? String(gid))"
        return "mode \(modeText), owner \(names) (\(uid):\(gid))"
    }

    /// Sets owner and group, then mode (in that order: chown clears set-id bits) on `path`.
    /// Returns the first problem as text (e.g. not allowed to give a file away without root)
    /// instead of throwing: callers decide whether it is fatal. Never follows a final symlink
    /// for the owner change.
    public func apply(to path: String) -> String? {
        var problem: String?
        var st = stat()
        if lstat(path, &st) == 0, st.st_uid != uid || st.st_gid != gid, lchown(path, uid, gid) != 0 {
            problem = "cannot set the owner of \(path) to \(uid):\(gid): \(String(cString: strerror(errno)))"
        }
        if chmod(path, mode) != 0 {
            problem = problem ?? "cannot set the mode of \(path) to \(modeText): \(String(cString: strerror(errno)))"
        }
        return problem
    }

    /// The user name of `uid`, if the system knows it.
    static func userName(_ uid: uid_t) -> String? {
        guard let pw = getpwuid(uid), let name = pw.pointee.pw_name else { return nil }
        return String(validatingCString: name)
    }

    /// The group name of `gid`, if the system knows it.
    static func groupName(_ gid: gid_t) -> String? {
        guard let gr = getgrgid(gid), let name = gr.pointee.gr_name else { return nil }
        return String(validatingCString: name)
    }
}
