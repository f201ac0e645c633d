import BackupCore
import Foundation

extension TestSupport {
    /// Runs any installed program (found in PATH) with `stdin` as its input, and waits.
    public static func runProgram(_ name: String, _ arguments: [String], stdin: Data? = nil,
                                  directory: String? = nil) throws -> Run {
        guard let path = ChildProcess.which(name) else {
            throw OperationError("\(name) is not installed (scripts/install-deps --test installs it)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let input = Pipe(), out = Pipe(), err = Pipe()
        p.standardInput = input
        p.standardOutput = out
        p.standardError = err
        try p.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        input.fileHandleForWriting.closeFile()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Moves a set's times `seconds` into the past: its manifest's run and target times, and
    /// the modification times of its files, as if the backup had been made that long ago.
    public static func age(set directory: String, by seconds: TimeInterval) throws {
        let path = directory + "/" + SetManifest.fileName
        var m = try BackstopJSON.decoder().decode(SetManifest.self, from: try read(path))
        m.startedAt -= seconds
        m.finishedAt -= seconds
        for i in m.targets.indices {
            m.targets[i].startedAt -= seconds
            m.targets[i].finishedAt -= seconds
        }
        if let e = FileManager.default.enumerator(atPath: directory) {
            while let rel = e.nextObject() as? String {
                let file = directory + "/" + rel
                if let attrs = try? FileManager.default.attributesOfItem(atPath: file), let date = attrs[.modificationDate] as? Date {
                    try FileManager.default.setAttributes([.modificationDate: date.addingTimeInterval(-seconds)], ofItemAtPath: file)
                }
            }
        }
        try FileOps.writeAtomically(try BackstopJSON.encoder().encode(m), to: path)
    }
}
