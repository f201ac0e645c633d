import Foundation

/// The off-site copy's configuration: a bucket, a prefix per deployment, and how to reach it.
///
/// Keys: `OFFSITE` (`s3://bucket/prefix`; or `OFFSITE_BUCKET` and `OFFSITE_PREFIX`),
/// `OFFSITE_ENDPOINT` (default `https://s3.<region>.amazonaws.com`), `OFFSITE_REGION`
/// (`us-east-1`), `OFFSITE_ADDRESSING` (`path` or `virtual`), `OFFSITE_NAME` (the deployment's
/// folder; default `DEPLOYMENT_NAME` or the executable's name), `OFFSITE_ACCESS_KEY_ID`,
/// `OFFSITE_SECRET_ACCESS_KEY`, `OFFSITE_SESSION_TOKEN` (else `AWS_ACCESS_KEY_ID`, ... from the
/// environment, else the shared credentials file, `OFFSITE_PROFILE`), `OFFSITE_CA_FILE`,
/// `OFFSITE_PART_SIZE_MB` (64), `OFFSITE_RETRIES` (5), `OFFSITE_TIMEOUT` (stall seconds, 60),
/// `OFFSITE_BWLIMIT` (KiB/s), `OFFSITE_AUTO` (push after each successful backup, default true),
/// `OFFSITE_RAW_SLASH_IN_QUERY`.
public struct OffsiteSettings: Sendable {
    /// How to reach the bucket.
    public var s3: S3Settings
    /// The key prefix of this deployment, ending in `/` (e.g. `backups/journal/`).
    public var root: String
    /// Push after every successful backup.
    public var auto: Bool

    /// `s3://bucket/root`, for messages.
    public var display: String { "s3://\(s3.bucket)/\(root)" }

    /// The settings, or nil when no off-site copy is configured.
    public static func from(config: Config, deploymentName: String) throws -> OffsiteSettings? {
        var bucket = config.string("OFFSITE_BUCKET")
        var prefix = config.string("OFFSITE_PREFIX") ?? ""
        let urlKey = config.string("OFFSITE") != nil ? "OFFSITE" : "OFFSITE_URL"
        if let raw = config.string(urlKey) {
            guard raw.hasPrefix("s3://") else {
                throw ConfigError.invalidValue(key: urlKey, file: config.origin(urlKey), value: raw, expected: "s3://BUCKET[/PREFIX]")
            }
            let rest = raw.dropFirst(5)
            let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            bucket = String(parts[0])
            prefix = parts.count > 1 ? String(parts[1]) : ""
        }
        guard let bucket else {
            for key in ["OFFSITE_ENDPOINT", "OFFSITE_ACCESS_KEY_ID", "OFFSITE_PREFIX"] where config.string(key) != nil {
                throw ConfigError.missingKey(key: "OFFSITE", file: config.file)
            }
            return nil
        }
        guard bucket.range(of: "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", options: .regularExpression) != nil else {
            throw ConfigError.invalidValue(key: urlKey, file: config.origin(urlKey), value: bucket, expected: "a bucket name (3-63 lowercase letters, digits, dots, dashes)")
        }
        let name = config.string("OFFSITE_NAME") ?? deploymentName
        guard name.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil, name != ".", name != ".." else {
            throw ConfigError.invalidValue(key: "OFFSITE_NAME", file: config.origin("OFFSITE_NAME"), value: name,
                                           expected: "letters, digits, dots, dashes and underscores (the deployment's folder in the bucket)")
        }
        let cleanPrefix = prefix.split(separator: "/").joined(separator: "/")
        guard cleanPrefix.range(of: "^[A-Za-z0-9._/-]*$", options: .regularExpression) != nil, !cleanPrefix.split(separator: "/").contains("..") else {
            throw ConfigError.invalidValue(key: urlKey, file: config.origin(urlKey), value: prefix, expected: "a prefix of letters, digits, dots, dashes, underscores and slashes")
        }
        let region = config.string("OFFSITE_REGION") ?? config.environment["AWS_REGION"] ?? "us-east-1"
        var endpoint = config.string("OFFSITE_ENDPOINT") ?? "https://s3.\(region).amazonaws.com"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        guard let url = URL(string: endpoint), ["http", "https"].contains(url.scheme ?? ""), url.host != nil, url.path.isEmpty else {
            throw ConfigError.invalidValue(key: "OFFSITE_ENDPOINT", file: config.origin("OFFSITE_ENDPOINT"), value: endpoint, expected: "http(s)://HOST[:PORT]")
        }
        var s3 = S3Settings(endpoint: endpoint, bucket: bucket, credentials: try credentials(config))
        s3.region = region
        s3.pathStyle = try config.choice("OFFSITE_ADDRESSING", ["path", "virtual"], default: "path") == "path"
        s3.caFile = try config.path("OFFSITE_CA_FILE")
        if let ca = s3.caFile, access(ca, R_OK) != 0 {
            throw ConfigError.invalidValue(key: "OFFSITE_CA_FILE", file: config.origin("OFFSITE_CA_FILE"), value: ca, expected: "a readable CA file")
        }
        let part = Int64(try config.int("OFFSITE_PART_SIZE_MB", default: 64, range: 5...5120)) << 20
        s3.partSize = part
        s3.multipartThreshold = part
        s3.attempts = try config.int("OFFSITE_RETRIES", default: 5, range: 1...20)
        s3.stallSeconds = try config.int("OFFSITE_TIMEOUT", default: 60, range: 5...3600)
        s3.bandwidthLimitKiB = try config.int("OFFSITE_BWLIMIT", default: 0, range: 0...10_000_000)
        s3.rawSlashInQuery = try config.bool("OFFSITE_RAW_SLASH_IN_QUERY", default: false)
        let root = (cleanPrefix.isEmpty ? "" : cleanPrefix + "/") + name + "/"
        return OffsiteSettings(s3: s3, root: root, auto: try config.bool("OFFSITE_AUTO", default: true))
    }

    /// The keys: config, then the environment, then the shared credentials file.
    static func credentials(_ config: Config) throws -> S3Credentials {
        if let id = config.string("OFFSITE_ACCESS_KEY_ID") {
            let secret = try config.require("OFFSITE_SECRET_ACCESS_KEY")
            return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: config.string("OFFSITE_SESSION_TOKEN"),
                                 source: "OFFSITE_ACCESS_KEY_ID/OFFSITE_SECRET_ACCESS_KEY in \(config.origin("OFFSITE_SECRET_ACCESS_KEY"))")
        }
        let env = config.environment
        if let id = env["AWS_ACCESS_KEY_ID"], !id.isEmpty {
            guard let secret = env["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw ConfigError.missingKey(key: "AWS_SECRET_ACCESS_KEY", file: "the environment")
            }
            return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: env["AWS_SESSION_TOKEN"],
                                 source: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment")
        }
        let file = env["AWS_SHARED_CREDENTIALS_FILE"] ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.aws/credentials")
        let profile = config.string("OFFSITE_PROFILE") ?? env["AWS_PROFILE"] ?? "default"
        if let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) {
            let values = sharedProfile(text, profile: profile)
            if let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
                return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"],
                                     source: "profile \(profile) of \(file)")
            }
        }
        throw ConfigError.missingKey(key: "OFFSITE_ACCESS_KEY_ID", file: config.file)
    }

    /// One profile's `key = value` pairs from an AWS shared credentials file.
    static func sharedProfile(_ text: String, profile: String) -> [String: String] {
        var current: String?
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.hasPrefix(";") || line.isEmpty { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard current == profile, let eq = line.firstIndex(of: "=") else { continue }
            values[line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }

    /// Secrets that do not come from config keys (the shared credentials file), for the
    /// redactor. Empty when nothing is configured or the keys come from config.
    public static func extraSecrets(config: Config) -> [String] {
        guard config.string("OFFSITE") != nil || config.string("OFFSITE_URL") != nil || config.string("OFFSITE_BUCKET") != nil,
              let c = try? credentials(config) else { return [] }
        return [c.secretAccessKey] + (c.sessionToken.map { [$0] } ?? [])
    }
}
