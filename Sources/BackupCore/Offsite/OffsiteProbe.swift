@preconcurrency import Crypto
import Foundation

/// One line of `offsite probe`.
public struct OffsiteProbeLine: Sendable, Codable {
    /// What was tried, e.g. `multipart`.
    public var check: String
    /// `yes`, `no` or `error`.
    public var result: String
    /// What happened.
    public var detail: String
}

extension OffsiteStore {
    /// Tries what the endpoint supports, with small objects under `<root>probe/` that it
    /// removes again: authentication (a listing), the addressing style, multipart upload,
    /// multi-object delete, and whether a wrong `x-amz-checksum-sha256` is refused.
    public func probe() -> [OffsiteProbeLine] {
        var lines: [OffsiteProbeLine] = []
        func line(_ check: String, _ body: () throws -> (String, String)) {
            do {
                let (result, detail) = try body()
                lines.append(OffsiteProbeLine(check: check, result: result, detail: detail))
            } catch {
                lines.append(OffsiteProbeLine(check: check, result: "error", detail: (error as? UserFacingError)?.message ?? "\(error)"))
            }
        }
        let base = settings.root + "probe/\(UInt32.random(in: 0...UInt32.max))-"
        line("auth") {
            _ = try client.send("GET", key: nil, query: ["list-type": "2", "max-keys": "1", "prefix": settings.root], payloadSHA256: S3Client.emptySHA256)
            return ("yes", "listed \(settings.display) with \(settings.s3.credentials.source)")
        }
        guard lines[0].result == "yes" else { return lines }
        line("addressing") {
            var other = settings.s3
            other.pathStyle.toggle()
            other.attempts = 1
            let name = other.pathStyle ? "path-style" : "virtual-host"
            let used = settings.s3.pathStyle ? "path-style" : "virtual-host"
            do {
                _ = try S3Client(settings: other).send("GET", key: nil, query: ["list-type": "2", "max-keys": "1"], payloadSHA256: S3Client.emptySHA256)
                return ("yes", "\(used) (in use) and \(name) both work")
            } catch {
                return ("yes", "\(used) (in use) works; \(name) does not here")
            }
        }
        line("put/get") {
            let data = Data("backstop probe\n".utf8)
            try client.putData(data, key: base + "object")
            let back = try client.getData(key: base + "object")
            return back == data ? ("yes", "an object went up and came back the same") : ("no", "an object came back different")
        }
        line("multipart") {
            let created = try client.send("POST", key: base + "multipart", query: ["uploads": ""], headers: ["x-amz-checksum-algorithm": "SHA256"],
                                          body: .data(Data()), payloadSHA256: S3Client.emptySHA256)
            guard let id = XMLFields.parse(created.body).first(where: { $0.name == "UploadId" })?.text else { return ("no", "no UploadId in the answer") }
            try client.abortUpload(key: base + "multipart", uploadID: id)
            return ("yes", "started and aborted an upload (parts of \(settings.s3.partSize >> 20) MiB above that size)")
        }
        line("multi-object delete") {
            try client.putData(Data("x".utf8), key: base + "delete")
            let xml = Data("<Delete><Quiet>true</Quiet><Object><Key>\(XMLFields.escape(base + "delete"))</Key></Object></Delete>".utf8)
            var h = StreamingSHA256()
            xml.withUnsafeBytes { h.update($0) }
            let sha = h.hexDigest()
            let md5 = Data(Insecure.MD5.hash(data: xml)).base64EncodedString()  // DeleteObjects requires Content-MD5 on AWS
            _ = try client.send("POST", key: nil, query: ["delete": ""], headers: ["x-amz-checksum-sha256": S3Client.base64(hex: sha), "content-md5": md5],
                                body: .data(xml), payloadSHA256: sha, contentType: "application/xml")
            return try client.head(key: base + "delete") == nil ? ("yes", "DeleteObjects removed the object") : ("no", "DeleteObjects answered but the object is still there")
        }
        line("checksum validation") {
            let data = Data("checksum probe".utf8)
            var h = StreamingSHA256()
            data.withUnsafeBytes { h.update($0) }
            do {
                _ = try client.send("PUT", key: base + "checksum", headers: ["x-amz-checksum-sha256": S3Client.base64(hex: S3Client.emptySHA256)],
                                    body: .data(data), payloadSHA256: h.hexDigest())
            } catch let e as S3Error where (400..<500).contains(e.status) {
                return ("yes", "a body with a wrong x-amz-checksum-sha256 was refused (\(e.status) \(e.code))")
            }
            try? client.delete(key: base + "checksum")
            return ("no", "a body with a wrong x-amz-checksum-sha256 was stored: this server does not check it (x-amz-content-sha256 and verify --deep still do)")
        }
        for suffix in ["object", "delete", "checksum", "multipart"] { try? client.delete(key: base + suffix) }
        return lines
    }
}
