import BackupCore
import Foundation
import XCTest

/// How a failed child is reported: the signal by name, and the lines that say why.
final class ChildProcessTests: XCTestCase {
    func testAChildKilledByASignalIsSaidSo() throws {
        let outcome = try ChildProcess("/bin/sh", ["-c", "kill -9 $$"]).run()
        XCTAssertEqual(outcome.signal, SIGKILL)
        XCTAssertEqual(outcome.termination, "killed by SIGKILL")
        let message = outcome.error("sh").message
        XCTAssertTrue(message.hasPrefix("sh failed (killed by SIGKILL)"), message)
        XCTAssertFalse(message.contains("137"), message)

        let exited = try ChildProcess("/bin/sh", ["-c", "echo 'tar: nope' >&2; exit 3"]).run()
        XCTAssertNil(exited.signal)
        XCTAssertEqual(exited.error("tar").message, "tar failed (exit 3): tar: nope")
    }

    /// The first error stays even when far more output follows it (stderr's tail alone lost it).
    func testAnEarlyErrorIsKeptBehindLaterOutput() throws {
        let script = """
        echo 'pg_restore: connecting' >&2
        echo 'pg_restore: error: could not execute query: ERROR:  role "x" does not exist' >&2
        i=0; while [ $i -lt 12000 ]; do echo "pg_restore: processing item $i of many, many items" >&2; i=$((i+1)); done
        echo 'pg_restore: error: a worker process died unexpectedly' >&2
        exit 1
        """
        let outcome = try ChildProcess("/bin/sh", ["-c", script]).run()
        XCTAssertEqual(outcome.status, 1)
        XCTAssertGreaterThan(outcome.stderr.utf8.count, 60_000)
        XCTAssertFalse(outcome.stderr.contains("role \"x\""), "the tail alone has lost it")
        let message = outcome.error("pg_restore").message
        XCTAssertTrue(message.contains("ERROR:  role \"x\" does not exist"), message)
        XCTAssertTrue(message.contains("a worker process died unexpectedly"), message)
        XCTAssertLessThan(message.count, 2000, "still one readable line")
    }
}
