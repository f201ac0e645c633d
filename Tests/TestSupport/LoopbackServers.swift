import Foundation

/// A TCP listener on 127.0.0.1 with a free port, serving each connection on a thread with a
/// handler, and recording what it received. Used to test alerts against real HTTP and SMTP
/// exchanges without leaving the machine.
public final class LoopbackServer: @unchecked Sendable {
    /// The port it listens on.
    public private(set) var port: UInt16 = 0
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var running = true

    /// Starts listening; `handler` serves one connection (read with `readLine`/`readBytes`, write
    /// with `send`) and returns what it received, to be recorded.
    public init(handler: @escaping @Sendable (Connection) -> String) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 8) == 0 else { throw NSError(domain: "LoopbackServer", code: Int(errno)) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread { [self] in
            // This thread owns the socket and closes it: if stop() closed it, a server created
            // next could get the same descriptor number, and this loop would accept its
            // connections. stop() only shuts it down, which makes accept fail here.
            defer { close(fd) }
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { break }
                Thread.detachNewThread { [self] in
                    let text = handler(Connection(fd: client))
                    close(client)
                    lock.lock(); received.append(text); lock.unlock()
                }
            }
        }
    }

    deinit { stop() }

    /// Stops listening.
    public func stop() {
        lock.lock(); defer { lock.unlock() }
        if running { running = false; shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Waits up to `timeout` seconds for `count` connections to have been served.
    public func requests(count: Int = 1, timeout: TimeInterval = 10) -> [String] {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            lock.lock(); let r = received; lock.unlock()
            if r.count >= count { return r }
            usleep(20_000)
        }
        lock.lock(); defer { lock.unlock() }
        return received
    }

    /// One accepted connection.
    public struct Connection {
        let fd: Int32
        /// Reads one line (up to LF), without the line ending; nil at end of stream.
        public func readLine() -> String? {
            var bytes: [UInt8] = []
            var c: UInt8 = 0
            while read(fd, &c, 1) == 1 {
                if c == 10 { return String(decoding: bytes.last == 13 ? bytes.dropLast() : bytes[...], as: UTF8.self) }
                bytes.append(c)
            }
            return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
        }
        /// Reads exactly `count` bytes (fewer at end of stream).
        public func readBytes(_ count: Int) -> Data {
            var data = Data()
            var buf = [UInt8](repeating: 0, count: 4096)
            while data.count < count {
                let n = read(fd, &buf, min(buf.count, count - data.count))
                if n <= 0 { break }
                data.append(contentsOf: buf[0..<n])
            }
            return data
        }
        /// Writes text.
        public func send(_ text: String) {
            _ = text.withCString { write(fd, $0, strlen($0)) }
        }
    }

    /// An HTTP/1.1 server answering every request with `status`, recording request line, headers and body.
    public static func http(status: Int = 200) throws -> LoopbackServer {
        try LoopbackServer { c in
            var lines: [String] = []
            var length = 0
            while let line = c.readLine(), !line.isEmpty {
                lines.append(line)
                if line.lowercased().hasPrefix("content-length:") { length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0 }
            }
            let body = String(decoding: c.readBytes(length), as: UTF8.self)
            c.send("HTTP/1.1 \(status) X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return (lines + ["", body]).joined(separator: "\n")
        }
    }

    /// A minimal SMTP server (no TLS, no AUTH) recording the envelope and the message.
    public static func smtp() throws -> LoopbackServer {
        try LoopbackServer { c in
            var log: [String] = []
            c.send("220 localhost ESMTP test\r\n")
            while let line = c.readLine() {
                let verb = line.prefix(4).uppercased()
                switch verb {
                case "EHLO", "HELO": c.send("250-localhost\r\n250 8BITMIME\r\n")
                case "MAIL", "RCPT": log.append(line); c.send("250 OK\r\n")
                case "DATA":
                    c.send("354 go on\r\n")
                    while let l = c.readLine(), l != "." { log.append(l) }
                    c.send("250 queued\r\n")
                case "QUIT": c.send("221 bye\r\n"); return log.joined(separator: "\n")
                default: c.send("502 no\r\n")
                }
            }
            return log.joined(separator: "\n")
        }
    }
}
