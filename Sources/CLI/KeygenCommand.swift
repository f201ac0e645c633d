import ArgumentParser
import BackupCore
import Foundation

/// `keygen`: makes an age X25519 identity, written the way `age-keygen` writes one, so the
/// key works with Backstop (`DECRYPT_IDENTITY_FILE`) and with `age -d -i` alike.
struct KeygenCommand<F: Frontend>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "keygen",
            abstract: "Generate an age identity (secret key) for encrypted backups, like age-keygen.",
            discussion: """
            Writes '# created: ...', '# public key: age1...' and the AGE-SECRET-KEY-1... line to \
            stdout, or to FILE, which is created with mode 0600 and never overwritten; then the \
            public key goes to stderr. Put the public key in ENCRYPT_TO and keep the identity \
            file off the backup machine (or at least out of the backups).
            """
        )
    }

    @Option(name: .shortAndLong, help: "Write the identity to this new file (mode 0600) instead of stdout.")
    var output: String?

    func run() throws {
        let identity = AgeIdentity.generate()
        let text = identity.keyFileText()
        guard let output else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        let fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw UsageError("keygen: \(output) already exists; not overwriting a key file") }
            throw UsageError("keygen: cannot create \(output): \(String(cString: strerror(errno)))")
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: Data(text.utf8))
            try handle.synchronize()
        } catch {
            unlink(output)
            throw OperationError("keygen: cannot write \(output): \(error.localizedDescription)")
        }
        FileHandle.standardError.write(Data("Public key: \(identity.recipient)\n".utf8))
    }
}
