import CCurl
import CShims
import Foundation

// The thin layer over libcurl. Every curl call and unsafe pointer in Backstop is in this file;
// curl_easy_setopt goes through the typed wrappers in CShims because it is variadic.

/// An error from libcurl or from the server it talked to.
public struct CurlError: UserFacingError {
    /// One line: what failed and why.
    public let message: String
    public var exitStatus: ExitStatus { .failure }
}

private let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

private final class Transfer {
    var response = Data()
    var upload: Data
    var uploadOffset = 0
    init(upload: Data) { self.upload = upload }
}

/// One transfer with libcurl: an HTTP request, or an SMTP message.
public enum Curl {
    /// The result of an HTTP request.
    public struct HTTPResponse: Sendable {
        /// The HTTP status code.
        public let status: Int
        /// The response body.
        public let body: Data
    }

    /// Performs an HTTP request with a body (POST when `body` is non-nil, GET otherwise).
    public static func http(url: String, method: String? = nil, headers: [String] = [], body: Data? = nil,
                            timeoutSeconds: Int = 20) throws -> HTTPResponse {
        try perform(url: url, upload: body ?? Data()) { h in
            if let body {
                backstop_curl_set_long(h, CURLOPT_POST, 1)
                backstop_curl_set_long(h, CURLOPT_POSTFIELDSIZE, body.count)
            }
            if let method { backstop_curl_set_string(h, CURLOPT_CUSTOMREQUEST, method) }
            backstop_curl_set_long(h, CURLOPT_TIMEOUT, timeoutSeconds)
            backstop_curl_set_long(h, CURLOPT_FOLLOWLOCATION, 1)
            backstop_curl_set_long(h, CURLOPT_MAXREDIRS, 3)
            return headers
        }
    }

    /// Sends `message` (RFC 5322 text with headers) over SMTP (`smtp://` or `smtps://`).
    /// STARTTLS is used when the server offers it; credentials are passed to libcurl, never
    /// on a command line.
    public static func sendMail(url: String, from: String, to: [String], user: String?, password: String?,
                                message: Data, timeoutSeconds: Int = 30) throws {
        _ = try perform(url: url, upload: message, recipients: to) { h in
            backstop_curl_set_string(h, CURLOPT_MAIL_FROM, "<\(from)>")
            backstop_curl_set_long(h, CURLOPT_UPLOAD, 1)
            backstop_curl_set_long(h, CURLOPT_INFILESIZE, message.count)
            backstop_curl_set_long(h, CURLOPT_USE_SSL, Int(CURLUSESSL_TRY.rawValue))
            backstop_curl_set_long(h, CURLOPT_TIMEOUT, timeoutSeconds)
            if let user { backstop_curl_set_string(h, CURLOPT_USERNAME, user) }
            if let password { backstop_curl_set_string(h, CURLOPT_PASSWORD, password) }
            return []
        }
    }

    private static func perform(url: String, upload: Data, recipients: [String] = [],
                                configure: (UnsafeMutableRawPointer) -> [String]) throws -> HTTPResponse {
        _ = globalInit
        guard let h = curl_easy_init() else { throw CurlError(message: "libcurl could not start a transfer") }
        defer { curl_easy_cleanup(h) }
        let transfer = Transfer(upload: upload)
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        backstop_curl_set_string(h, CURLOPT_URL, url)
        backstop_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        // Loopback never goes through a proxy, whatever http_proxy says.
        backstop_curl_set_string(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1")
        backstop_curl_set_long(h, CURLOPT_CONNECTTIMEOUT, 10)
        backstop_curl_set_string(h, CURLOPT_USERAGENT, "backstop/\(backstopVersion)")
        backstop_curl_set_pointer(h, CURLOPT_WRITEDATA, context.toOpaque())
        backstop_curl_set_data_callback(h, CURLOPT_WRITEFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            t.response.append(UnsafeRawPointer(ptr!).assumingMemoryBound(to: UInt8.self), count: size * count)
            return size * count
        }
        backstop_curl_set_pointer(h, CURLOPT_READDATA, context.toOpaque())
        backstop_curl_set_data_callback(h, CURLOPT_READFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let n = min(size * count, t.upload.count - t.uploadOffset)
            t.upload.withUnsafeBytes { raw in
                ptr!.withMemoryRebound(to: UInt8.self, capacity: n) { dst in
                    dst.update(from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + t.uploadOffset, count: n)
                }
            }
            t.uploadOffset += n
            return n
        }
        if !upload.isEmpty {
            // POSTFIELDS would copy into a C string; stream the body through the read callback.
            backstop_curl_set_pointer(h, CURLOPT_POSTFIELDS, nil)
        }
        let headers = configure(h)
        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        if list != nil { backstop_curl_set_slist(h, CURLOPT_HTTPHEADER, list) }
        var rcpt: UnsafeMutablePointer<curl_slist>?
        for r in recipients { rcpt = curl_slist_append(rcpt, "<\(r)>") }
        defer { curl_slist_free_all(rcpt) }
        if rcpt != nil { backstop_curl_set_slist(h, CURLOPT_MAIL_RCPT, rcpt) }

        let rc = errorBuffer.withUnsafeMutableBufferPointer { buf -> CURLcode in
            backstop_curl_set_pointer(h, CURLOPT_ERRORBUFFER, buf.baseAddress)
            return curl_easy_perform(h)
        }
        guard rc == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CurlError(message: "\(Self.scheme(url)) to \(Self.host(url)) failed: \(detail.isEmpty ? String(cString: curl_easy_strerror(rc)) : detail)")
        }
        var status = 0
        backstop_curl_get_response_code(h, &status)
        return HTTPResponse(status: status, body: transfer.response)
    }

    /// The version of the libcurl Backstop runs with, e.g. `7.88.1`.
    public static var libraryVersion: String {
        // CURLVERSION_NOW is a macro Swift does not import; it is CURLVERSION_ELEVENTH in
        // Debian 12's curl 7.88, and `version` is there in every struct age.
        guard let info = curl_version_info(CURLVERSION_ELEVENTH), let version = info.pointee.version else { return "unknown" }
        return String(cString: version)
    }

    /// The host part of a URL, for messages that must not show paths or tokens.
    static func host(_ url: String) -> String { URL(string: url)?.host ?? "(invalid URL)" }
    static func scheme(_ url: String) -> String { URL(string: url)?.scheme?.uppercased() ?? "request" }
}

/// Where a streamed request's body comes from and where its response goes (see `Curl.stream`).
final class StreamTransfer {
    /// The request body: bytes in memory, or `length` bytes of `fd` from `offset`.
    var body = Data()
    var bodyOffset = 0
    var fd: Int32 = -1
    var fileOffset: Int64 = 0
    var fileRemaining: Int64 = 0
    /// Bytes handed to libcurl for sending.
    var sent: Int64 = 0
    /// The response body: to `sinkFD` when set (hashed as it is written), else into `response`.
    var sinkFD: Int32 = -1
    var sinkError: Int32 = 0
    var hasher = StreamingSHA256()
    var response = Data()
    var headers: [String: String] = [:]
    var received: Int64 = 0
}

extension Curl {
    /// A streamed HTTP request (the S3 client's transport): everything but the URL, method and
    /// headers is set here, once.
    struct StreamRequest {
        var url: String
        var method: String
        var headers: [String]
        /// AWS Signature V4 (`CURLOPT_AWS_SIGV4`): provider string, user, secret.
        var sigv4: (provider: String, user: String, secret: String)?
        /// Body in memory (POST/PUT), or nil.
        var body: Data?
        /// Body from a file: descriptor, offset, length.
        var file: (fd: Int32, offset: Int64, length: Int64)?
        /// Response body into this descriptor instead of memory.
        var sinkFD: Int32 = -1
        var caFile: String?
        var stallSeconds = 60
        var connectTimeout = 10
        var maxSendBytesPerSecond = 0
        var maxRecvBytesPerSecond = 0
    }

    /// The outcome of a streamed request.
    struct StreamResponse {
        var status: Int
        var headers: [String: String]
        var body: Data
        var sent: Int64
        var received: Int64
        /// SHA-256 of what went to `sinkFD`.
        var sinkSHA256: String
        /// Bytes written to `sinkFD`.
        var sinkBytes: Int64
    }

    /// Performs `request`. Throws `CurlError` for transport failures (connection, TLS, timeout);
    /// any HTTP status is returned.
    static func stream(_ request: StreamRequest) throws -> StreamResponse {
        _ = globalInit
        guard let h = curl_easy_init() else { throw CurlError(message: "libcurl could not start a transfer") }
        defer { curl_easy_cleanup(h) }
        let transfer = StreamTransfer()
        if let body = request.body { transfer.body = body }
        if let file = request.file { (transfer.fd, transfer.fileOffset, transfer.fileRemaining) = file }
        transfer.sinkFD = request.sinkFD
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        backstop_curl_set_string(h, CURLOPT_URL, request.url)
        backstop_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        backstop_curl_set_string(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1")
        backstop_curl_set_long(h, CURLOPT_CONNECTTIMEOUT, request.connectTimeout)
        // A stalled transfer (under 1 byte/s for stallSeconds) fails; a long one does not.
        backstop_curl_set_long(h, CURLOPT_LOW_SPEED_LIMIT, 1)
        backstop_curl_set_long(h, CURLOPT_LOW_SPEED_TIME, request.stallSeconds)
        backstop_curl_set_long(h, CURLOPT_SSL_VERIFYPEER, 1)
        backstop_curl_set_long(h, CURLOPT_SSL_VERIFYHOST, 2)
        if let ca = request.caFile { backstop_curl_set_string(h, CURLOPT_CAINFO, ca) }
        if request.maxSendBytesPerSecond > 0 { backstop_curl_set_long(h, CURLOPT_MAX_SEND_SPEED_LARGE, request.maxSendBytesPerSecond) }
        if request.maxRecvBytesPerSecond > 0 { backstop_curl_set_long(h, CURLOPT_MAX_RECV_SPEED_LARGE, request.maxRecvBytesPerSecond) }
        backstop_curl_set_long(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 1000)
        backstop_curl_set_string(h, CURLOPT_USERAGENT, "backstop/\(backstopVersion)")
        if let sig = request.sigv4 {
            backstop_curl_set_string(h, CURLOPT_AWS_SIGV4, sig.provider)
            backstop_curl_set_string(h, CURLOPT_USERNAME, sig.user)
            backstop_curl_set_string(h, CURLOPT_PASSWORD, sig.secret)
        }
        switch request.method {
        case "GET": break
        case "HEAD": backstop_curl_set_long(h, CURLOPT_NOBODY, 1)
        case "PUT":
            backstop_curl_set_long(h, CURLOPT_UPLOAD, 1)
            backstop_curl_set_long(h, CURLOPT_INFILESIZE_LARGE, Int(request.file?.length ?? Int64(request.body?.count ?? 0)))
        case "POST":
            backstop_curl_set_long(h, CURLOPT_POST, 1)
            backstop_curl_set_long(h, CURLOPT_POSTFIELDSIZE_LARGE, request.body?.count ?? 0)
            backstop_curl_set_pointer(h, CURLOPT_POSTFIELDS, nil)
        default: backstop_curl_set_string(h, CURLOPT_CUSTOMREQUEST, request.method)
        }
        backstop_curl_set_pointer(h, CURLOPT_WRITEDATA, context.toOpaque())
        backstop_curl_set_data_callback(h, CURLOPT_WRITEFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<StreamTransfer>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            let raw = UnsafeRawBufferPointer(start: ptr, count: n)
            t.received += Int64(n)
            guard t.sinkFD >= 0 else { t.response.append(contentsOf: raw); return n }
            var done = 0
            while done < n {
                let w = write(t.sinkFD, raw.baseAddress! + done, n - done)
                if w < 0 { if errno == EINTR { continue }; t.sinkError = errno; return 0 }
                done += w
            }
            t.hasher.update(raw)
            return n
        }
        backstop_curl_set_pointer(h, CURLOPT_HEADERDATA, context.toOpaque())
        backstop_curl_set_data_callback(h, CURLOPT_HEADERFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<StreamTransfer>.fromOpaque(user!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: size * count), as: UTF8.self)
            if line.hasPrefix("HTTP/") { t.headers = [:] }
            if let colon = line.firstIndex(of: ":") {
                t.headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return size * count
        }
        backstop_curl_set_pointer(h, CURLOPT_READDATA, context.toOpaque())
        backstop_curl_set_data_callback(h, CURLOPT_READFUNCTION) { ptr, size, count, user in
            let t = Unmanaged<StreamTransfer>.fromOpaque(user!).takeUnretainedValue()
            let want = size * count
            if t.fd >= 0 {
                let n = min(Int64(want), t.fileRemaining)
                guard n > 0 else { return 0 }
                var r = pread(t.fd, ptr, Int(n), off_t(t.fileOffset))
                while r < 0 && errno == EINTR { r = pread(t.fd, ptr, Int(n), off_t(t.fileOffset)) }
                guard r > 0 else { return Int(CURL_READFUNC_ABORT) }
                t.fileOffset += Int64(r)
                t.fileRemaining -= Int64(r)
                t.sent += Int64(r)
                return r
            }
            let n = min(want, t.body.count - t.bodyOffset)
            guard n > 0 else { return 0 }
            t.body.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(ptr!).copyMemory(from: raw.baseAddress! + t.bodyOffset, byteCount: n)
            }
            t.bodyOffset += n
            t.sent += Int64(n)
            return n
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in request.headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        if list != nil { backstop_curl_set_slist(h, CURLOPT_HTTPHEADER, list) }

        let rc = errorBuffer.withUnsafeMutableBufferPointer { buf -> CURLcode in
            backstop_curl_set_pointer(h, CURLOPT_ERRORBUFFER, buf.baseAddress)
            return curl_easy_perform(h)
        }
        if transfer.sinkError != 0 {
            throw CurlError(message: "writing the download failed: \(String(cString: strerror(transfer.sinkError)))")
        }
        guard rc == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CurlError(message: "\(request.method) to \(Self.host(request.url)) failed: \(detail.isEmpty ? String(cString: curl_easy_strerror(rc)) : detail)")
        }
        var status = 0
        backstop_curl_get_response_code(h, &status)
        return StreamResponse(status: status, headers: transfer.headers, body: transfer.response, sent: transfer.sent,
                              received: transfer.received, sinkSHA256: transfer.hasher.hexDigest(), sinkBytes: transfer.hasher.count)
    }
}
