import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Where an S3 client's keys came from, and the keys themselves (never logged).
public struct S3Credentials: Sendable {
    /// The access key ID.
    public var accessKeyID: String
    /// The secret access key.
    public var secretAccessKey: String
    /// A session token (`x-amz-security-token`), for temporary credentials.
    public var sessionToken: String?
    /// Where they came from, for messages: a config key, the environment or a file.
    public var source: String

    /// Creates credentials.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.source = source
    }
}

/// How to reach one bucket.
public struct S3Settings: Sendable {
    /// `scheme://host[:port]`, no trailing slash.
    public var endpoint: String
    /// The bucket.
    public var bucket: String
    /// The signing region.
    public var region: String = "us-east-1"
    /// Path-style (`endpoint/bucket/key`, the default) or virtual-host (`bucket.host/key`).
    public var pathStyle = true
    /// The keys.
    public var credentials: S3Credentials
    /// A CA bundle for TLS (verification is always on).
    public var caFile: String?
    /// Multipart part size in bytes (default 64 MiB).
    public var partSize: Int64 = 64 << 20
    /// Objects larger than this go up in parts.
    public var multipartThreshold: Int64 = 64 << 20
    /// Attempts per request for 5xx, 429 and connection errors.
    public var attempts = 5
    /// The first retry's delay; each next one doubles, with jitter.
    public var retryBaseSeconds = 0.5
    /// A transfer that moves nothing for this long fails (and is retried).
    public var stallSeconds = 60
    /// Send `/` in query values bare instead of as `%2F` (`OFFSITE_RAW_SLASH_IN_QUERY`; moto
    /// needs it).
    public var rawSlashInQuery = false
    /// Upload and download limit in KiB/s (0: none).
    public var bandwidthLimitKiB = 0

    /// Creates settings.
    public init(endpoint: String, bucket: String, credentials: S3Credentials) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.credentials = credentials
    }
}

/// An object as a listing or a HEAD request shows it.
public struct S3Object: Sendable, Equatable {
    /// The key.
    public var key: String
    /// Its size in bytes.
    public var size: Int64
    /// `x-amz-meta-sha256` (HEAD only; nil in listings or when absent).
    public var sha256: String?
    /// When it was written (listings only).
    public var lastModified: Date? = nil
}

/// An S3 error response or a transport failure, in one line. Never holds a credential.
public struct S3Error: UserFacingError {
    /// The HTTP status (0 for a transport failure).
    public let status: Int
    /// The S3 error code, e.g. `SignatureDoesNotMatch`.
    public let code: String
    /// The one-line message.
    public let message: String
    public var exitStatus: ExitStatus { .failure }
}

/// A small S3 client on libcurl: AWS Signature V4 by `CURLOPT_AWS_SIGV4`, streamed uploads
/// and downloads, multipart above a threshold, retries with backoff and jitter.
///
/// Every request goes through `send`, which handles what makes curl 7.88's signing fail
/// (each gives a 403): the real payload hash in `x-amz-content-sha256`, a sorted and
/// percent-encoded query (bare flags as `uploads=`), no header-removal entries and no header
/// twice, and an explicit `Content-Type`.
public final class S3Client: @unchecked Sendable {
    /// The settings.
    public let settings: S3Settings
    private let lock = NSLock()
    private var sentBytes: Int64 = 0
    private var requestCount = 0

    /// The SHA-256 of nothing: the payload hash of requests without a body.
    public static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// Creates a client.
    public init(settings: S3Settings) { self.settings = settings }

    /// Bytes of request bodies sent so far (retries included).
    public var bytesSent: Int64 { lock.withLock { sentBytes } }
    /// Requests made so far (retries included).
    public var requests: Int { lock.withLock { requestCount } }

    // MARK: URLs and signing

    /// AWS URI encoding: everything but `A-Za-z0-9-_.~` as `%XX` (and `/` too unless `keepSlash`).
    static func encode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(b)))
            case UInt8(ascii: "/") where keepSlash: out.append("/")
            default: out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// The URL of `key` (nil: the bucket) with `query` sorted by name and encoded (curl 7.88
    /// signs the query as sent). A `/` in a value goes as `%2F`, as AWS and SeaweedFS expect,
    /// or bare with `rawSlashInQuery` (moto 5 checks the signature against a bare `/`).
    func url(key: String?, query: [String: String] = [:]) -> String {
        let path = key.map { "/" + S3Client.encode($0, keepSlash: true) } ?? "/"
        var base: String
        if settings.pathStyle {
            base = settings.endpoint + "/" + S3Client.encode(settings.bucket, keepSlash: false) + (key == nil ? "" : path)
        } else {
            let parts = settings.endpoint.components(separatedBy: "://")
            base = parts[0] + "://" + settings.bucket + "." + parts[1] + path
        }
        if !query.isEmpty {
            base += "?" + query.keys.sorted().map { "\(S3Client.encode($0, keepSlash: false))=\(S3Client.encode(query[$0]!, keepSlash: settings.rawSlashInQuery))" }
                .joined(separator: "&")
        }
        return base
    }

    /// A request body.
    enum Body {
        case none
        case data(Data)
        case file(fd: Int32, offset: Int64, length: Int64)
    }

    /// Sends one request with retries. `payloadSHA256` is the body's hex SHA-256 (nil only
    /// for a body whose hash is unknown: then `UNSIGNED-PAYLOAD`). Non-2xx answers other than
    /// those in `accept` throw `S3Error`.
    @discardableResult
    func send(_ method: String, key: String?, query: [String: String] = [:], headers extra: [String: String] = [:],
              body: Body = .none, payloadSHA256: String?, contentType: String = "application/octet-stream",
              sinkFD: Int32 = -1, accept: Set<Int> = []) throws -> Curl.StreamResponse {
        var headers = extra
        headers["x-amz-content-sha256"] = payloadSHA256 ?? "UNSIGNED-PAYLOAD"
        headers["content-type"] = contentType
        if let token = settings.credentials.sessionToken { headers["x-amz-security-token"] = token }
        var request = Curl.StreamRequest(url: url(key: key, query: query), method: method,
                                         headers: headers.keys.sorted().map { "\($0): \(headers[$0]!)" },
                                         sigv4: ("aws:amz:\(settings.region):s3", settings.credentials.accessKeyID,
                                                 settings.credentials.secretAccessKey))
        switch body {
        case .none: if method == "PUT" || method == "POST" { request.body = Data() }
        case .data(let d): request.body = d
        case .file(let fd, let offset, let length): request.file = (fd, offset, length)
        }
        request.sinkFD = sinkFD
        request.caFile = settings.caFile
        request.stallSeconds = settings.stallSeconds
        request.maxSendBytesPerSecond = settings.bandwidthLimitKiB * 1024
        request.maxRecvBytesPerSecond = settings.bandwidthLimitKiB * 1024
        let what = "S3 \(method) \(settings.bucket)/\(key ?? "")"
        var attempt = 0
        while true {
            attempt += 1
            if sinkFD >= 0 { _ = ftruncate(sinkFD, 0); _ = lseek(sinkFD, 0, SEEK_SET) }
            let response: Curl.StreamResponse
            do {
                response = try Curl.stream(request)
            } catch let error as CurlError {
                lock.withLock { requestCount += 1 }
                if attempt < settings.attempts && !S3Client.interrupted { backoff(attempt); continue }
                throw S3Error(status: 0, code: "Transport", message: "\(what) at \(Curl.host(settings.endpoint)): \(error.message)\(attempt > 1 ? " (after \(attempt) attempts)" : "")")
            }
            lock.withLock { requestCount += 1; sentBytes += response.sent }
            if (200..<300).contains(response.status) || accept.contains(response.status) { return response }
            if (response.status >= 500 || response.status == 429) && attempt < settings.attempts && !S3Client.interrupted {
                backoff(attempt)
                continue
            }
            throw describe(response, what: what)
        }
    }

    /// True once SIGINT or SIGTERM came: no more retries.
    static var interrupted: Bool { (try? Interrupts.shared.checkpoint()) == nil }

    private func backoff(_ attempt: Int) {
        let delay = min(settings.retryBaseSeconds * pow(2, Double(attempt - 1)), 30) * Double.random(in: 0.5...1.0)
        usleep(useconds_t(delay * 1_000_000))
    }

    private func describe(_ response: Curl.StreamResponse, what: String) -> S3Error {
        let fields = XMLFields.parse(response.body)
        let code = fields.first { $0.name == "Code" }?.text ?? "HTTP\(response.status)"
        var message = fields.first { $0.name == "Message" }?.text ?? ""
        message = message.replacingOccurrences(of: settings.credentials.secretAccessKey, with: "***")
        var hint = ""
        if response.status == 403 || ["SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"].contains(code) {
            hint = "; check the access key ID and secret (from \(settings.credentials.source)) and OFFSITE_REGION"
        } else if code == "NoSuchBucket" {
            hint = "; create the bucket or fix OFFSITE"
        }
        return S3Error(status: response.status, code: code,
                       message: "\(what) at \(Curl.host(settings.endpoint)): \(response.status) \(code)\(message.isEmpty ? "" : ": \(message)")\(hint)")
    }

    // MARK: Objects

    /// Uploads the file at `path` to `key`. `sha256` is the file's hex SHA-256 (hashed here
    /// when nil); it goes out as `x-amz-content-sha256`, `x-amz-checksum-sha256` and
    /// `x-amz-meta-sha256`. Above the multipart threshold the file goes up in parts.
    public func putFile(_ path: String, key: String, sha256 known: String? = nil) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("stat", path) }
        try putFile(fd: fd, size: Int64(st.st_size), key: key, sha256: known, path: path)
    }

    /// Uploads `size` bytes of the open file `fd` (named `path` in messages) to `key`, as
    /// `putFile(_:key:sha256:)` does.
    public func putFile(fd: Int32, size: Int64, key: String, sha256 known: String?, path: String) throws {
        if size > settings.multipartThreshold { return try putMultipart(fd: fd, size: size, key: key, sha256: known, path: path) }
        let sha = try known ?? S3Client.hash(fd: fd, offset: 0, length: size, path: path)
        try send("PUT", key: key, headers: ["x-amz-meta-sha256": sha, "x-amz-checksum-sha256": S3Client.base64(hex: sha)],
                 body: .file(fd: fd, offset: 0, length: size), payloadSHA256: sha)
    }

    /// Uploads `data` to `key`, with its SHA-256 as for `putFile`.
    public func putData(_ data: Data, key: String) throws {
        var h = StreamingSHA256()
        data.withUnsafeBytes { h.update($0) }
        let sha = h.hexDigest()
        try send("PUT", key: key, headers: ["x-amz-meta-sha256": sha, "x-amz-checksum-sha256": S3Client.base64(hex: sha)],
                 body: .data(data), payloadSHA256: sha)
    }

    /// Downloads `key` into `path` (created 0600, replaced if it exists), hashing as it
    /// streams. Returns the SHA-256 and size of what was written.
    public func getFile(key: String, to path: String) throws -> (sha256: String, bytes: Int64, metaSHA256: String?) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemError("create", path) }
        defer { close(fd) }
        return try getFile(key: key, fd: fd)
    }

    /// Downloads `key` into the open, empty file `fd` (fsynced), hashing as it streams. Returns
    /// the SHA-256 and size of what was written, and the object's `x-amz-meta-sha256`.
    public func getFile(key: String, fd: Int32) throws -> (sha256: String, bytes: Int64, metaSHA256: String?) {
        let r = try send("GET", key: key, payloadSHA256: S3Client.emptySHA256, sinkFD: fd)
        guard fsync(fd) == 0 else { throw SystemError("fsync", key) }
        return (r.sinkSHA256, r.sinkBytes, r.headers["x-amz-meta-sha256"])
    }

    /// Streams `key` through a hash without keeping it. Returns its SHA-256 and size.
    public func hashObject(key: String) throws -> (sha256: String, bytes: Int64) {
        let fd = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", "/dev/null") }
        defer { close(fd) }
        let r = try send("GET", key: key, payloadSHA256: S3Client.emptySHA256, sinkFD: fd)
        return (r.sinkSHA256, r.sinkBytes)
    }

    /// Downloads a small object into memory.
    public func getData(key: String) throws -> Data {
        try send("GET", key: key, payloadSHA256: S3Client.emptySHA256).body
    }

    /// The object's size and `x-amz-meta-sha256`, or nil when it does not exist.
    public func head(key: String) throws -> S3Object? {
        let r = try send("HEAD", key: key, payloadSHA256: S3Client.emptySHA256, accept: [404])
        if r.status == 404 { return nil }
        return S3Object(key: key, size: Int64(r.headers["content-length"] ?? "") ?? 0, sha256: r.headers["x-amz-meta-sha256"])
    }

    /// Creates the bucket (an existing one of the same owner is fine).
    public func createBucket() throws {
        try send("PUT", key: nil, payloadSHA256: S3Client.emptySHA256, accept: [409])
    }

    /// Deletes `key` (no error when it does not exist).
    public func delete(key: String) throws {
        try send("DELETE", key: key, payloadSHA256: S3Client.emptySHA256, accept: [404])
    }

    /// Every object under `prefix`, following continuation tokens.
    public func list(prefix: String) throws -> [S3Object] {
        var out: [S3Object] = []
        var token: String?
        repeat {
            var query = ["list-type": "2", "prefix": prefix, "max-keys": "1000"]
            if let token { query["continuation-token"] = token }
            let r = try send("GET", key: nil, query: query, payloadSHA256: S3Client.emptySHA256)
            var key: String?, size: Int64 = 0, modified: Date?
            token = nil
            var truncated = false
            for f in XMLFields.parse(r.body) {
                switch f.name {
                case "Key": key = f.text
                case "Size": size = Int64(f.text) ?? 0
                case "LastModified": modified = Format.parseISO8601(f.text) ?? S3Client.parseFractionalISO8601(f.text)
                case "/Contents":
                    if let k = key { out.append(S3Object(key: k, size: size, sha256: nil, lastModified: modified)) }
                    key = nil; size = 0; modified = nil
                case "IsTruncated": truncated = f.text == "true"
                case "NextContinuationToken": token = f.text
                default: break
                }
            }
            if !truncated { token = nil }
        } while token != nil
        return out
    }

    // MARK: Multipart

    private func putMultipart(fd: Int32, size: Int64, key: String, sha256 known: String?, path: String) throws {
        let sha = try known ?? S3Client.hash(fd: fd, offset: 0, length: size, path: path)
        let created = try send("POST", key: key, query: ["uploads": ""],
                               headers: ["x-amz-meta-sha256": sha, "x-amz-checksum-algorithm": "SHA256"],
                               body: .data(Data()), payloadSHA256: S3Client.emptySHA256)
        guard let uploadID = XMLFields.parse(created.body).first(where: { $0.name == "UploadId" })?.text, !uploadID.isEmpty else {
            throw S3Error(status: created.status, code: "NoUploadId", message: "S3 multipart upload of \(key): the server returned no UploadId")
        }
        do {
            var parts: [(number: Int, etag: String, checksum: String)] = []
            var offset: Int64 = 0
            var number = 1
            while offset < size {
                try Interrupts.shared.checkpoint()
                let length = min(settings.partSize, size - offset)
                let partSHA = try S3Client.hash(fd: fd, offset: offset, length: length, path: path)
                let checksum = S3Client.base64(hex: partSHA)
                let r = try send("PUT", key: key, query: ["partNumber": String(number), "uploadId": uploadID],
                                 headers: ["x-amz-checksum-sha256": checksum],
                                 body: .file(fd: fd, offset: offset, length: length), payloadSHA256: partSHA)
                parts.append((number, r.headers["etag"] ?? "", checksum))
                offset += length
                number += 1
            }
            var xml = "<CompleteMultipartUpload>"
            for p in parts {
                xml += "<Part><PartNumber>\(p.number)</PartNumber><ETag>\(XMLFields.escape(p.etag))</ETag><ChecksumSHA256>\(p.checksum)</ChecksumSHA256></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let body = Data(xml.utf8)
            var h = StreamingSHA256()
            body.withUnsafeBytes { h.update($0) }
            let done = try send("POST", key: key, query: ["uploadId": uploadID], body: .data(body), payloadSHA256: h.hexDigest(),
                                contentType: "application/xml")
            // CompleteMultipartUpload can fail with a 200 whose body is an error.
            if let code = XMLFields.parse(done.body).first(where: { $0.name == "Code" })?.text {
                throw S3Error(status: done.status, code: code, message: "S3 multipart upload of \(key): completion failed: \(code)")
            }
        } catch {
            _ = try? send("DELETE", key: key, query: ["uploadId": uploadID], payloadSHA256: S3Client.emptySHA256, accept: [404])
            throw error
        }
    }

    /// Multipart uploads in progress under `prefix`: (key, upload ID).
    public func pendingUploads(prefix: String) throws -> [(key: String, uploadID: String)] {
        let r = try send("GET", key: nil, query: ["uploads": "", "prefix": prefix], payloadSHA256: S3Client.emptySHA256)
        var out: [(String, String)] = []
        var key: String?, id: String?
        for f in XMLFields.parse(r.body) {
            switch f.name {
            case "Key": key = f.text
            case "UploadId": id = f.text
            case "/Upload": if let key, let id { out.append((key, id)) }; key = nil; id = nil
            default: break
            }
        }
        return out
    }

    /// Aborts a multipart upload.
    public func abortUpload(key: String, uploadID: String) throws {
        try send("DELETE", key: key, query: ["uploadId": uploadID], payloadSHA256: S3Client.emptySHA256, accept: [404])
    }

    // MARK: Helpers

    /// Hex SHA-256 of `length` bytes of `fd` from `offset`.
    static func hash(fd: Int32, offset: Int64, length: Int64, path: String) throws -> String {
        var h = StreamingSHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var at = offset
        let end = offset + length
        while at < end {
            let want = Int(min(Int64(buffer.count), end - at))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(at)) }
            if n < 0 { if errno == EINTR { continue }; throw SystemError("read", path) }
            if n == 0 { throw OperationError("\(path) shrank while it was being uploaded") }
            buffer.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0.prefix(n))) }
            at += Int64(n)
        }
        return h.hexDigest()
    }

    /// `2026-12-08T02:00:00.000Z`, as listings write times.
    static func parseFractionalISO8601(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }

    /// A hex digest as base64 (the form of `x-amz-checksum-sha256`).
    static func base64(hex: String) -> String {
        var bytes: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            bytes.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16) ?? 0)
        }
        return Data(bytes).base64EncodedString()
    }
}

/// The leaf elements of an XML document in order (`name`, `text`), with `/Name` marking the end
/// of every element that holds others. Enough for S3's responses; XMLParser does the parsing.
enum XMLFields {
    struct Field { var name: String; var text: String }

    private final class Collector: NSObject, XMLParserDelegate {
        var fields: [Field] = []
        var text = ""
        var hadChild: [Bool] = []
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            if !hadChild.isEmpty { hadChild[hadChild.count - 1] = true }
            hadChild.append(false)
            text = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            let container = hadChild.popLast() ?? false
            fields.append(Field(name: container ? "/" + name : name, text: container ? "" : text))
            text = ""
        }
    }

    static func parse(_ data: Data) -> [Field] {
        guard !data.isEmpty else { return [] }
        let parser = XMLParser(data: data)
        let collector = Collector()
        parser.delegate = collector
        parser.shouldResolveExternalEntities = false
        _ = parser.parse()
        return collector.fields
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
