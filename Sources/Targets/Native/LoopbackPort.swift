import BackupCore
import Foundation

/// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it), for a
/// throwaway server such as the base-backup restore drill's.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SystemError("socket", "127.0.0.1") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
            bind(fd, sp, len) == 0 && getsockname(fd, sp, &len) == 0
        }
    }
    guard ok else { throw SystemError("bind", "127.0.0.1:0") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
