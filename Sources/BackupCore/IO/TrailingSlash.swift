extension FileOps {
    /// `path` without trailing slashes (`/srv/data/` -> `/srv/data`), except the root `/`
    /// itself: the one rule for paths written with or without their final slash.
    public static func trimmingTrailingSlashes(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return String(p)
    }
}
