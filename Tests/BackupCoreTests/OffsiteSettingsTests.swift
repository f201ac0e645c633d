@testable import BackupCore
import Foundation
import TestSupport
import XCTest

/// Off-site config: one clear line naming the key for bad values; credentials from config,
/// the environment or the shared credentials file, in that order.
final class OffsiteSettingsTests: XCTestCase {
    func settings(_ values: [String: String], env: [String: String] = [:]) throws -> OffsiteSettings? {
        try OffsiteSettings.from(config: Config(file: "/etc/b.env", values: values, environment: env), deploymentName: "journal")
    }

    func testParsesTheURLAndDefaults() throws {
        let s = try XCTUnwrap(try settings(["OFFSITE": "s3://my-bucket/some/prefix/", "OFFSITE_ACCESS_KEY_ID": "AK", "OFFSITE_SECRET_ACCESS_KEY": "SECRETVALUE"]))
        XCTAssertEqual(s.s3.bucket, "my-bucket")
        XCTAssertEqual(s.root, "some/prefix/journal/")
        XCTAssertEqual(s.s3.endpoint, "https://s3.us-east-1.amazonaws.com")
        XCTAssertTrue(s.s3.pathStyle)
        XCTAssertEqual(s.s3.partSize, 64 << 20)
        XCTAssertTrue(s.auto)
        XCTAssertNil(try settings([:]), "not configured")
        let client = S3Client(settings: s.s3)
        XCTAssertEqual(client.url(key: "a b/c", query: ["uploads": "", "prefix": "x/y"]),
                       "https://s3.us-east-1.amazonaws.com/my-bucket/a%20b/c?prefix=x%2Fy&uploads=")
    }

    func testBadValuesNameTheKey() {
        let keys = ["OFFSITE_ACCESS_KEY_ID": "AK", "OFFSITE_SECRET_ACCESS_KEY": "SECRETVALUE"]
        let cases: [([String: String], String)] = [
            (["OFFSITE": "http://bucket"], "OFFSITE"),
            (["OFFSITE": "s3://Bad_Bucket"], "OFFSITE"),
            (["OFFSITE": "s3://bucket", "OFFSITE_ENDPOINT": "ftp://x"], "OFFSITE_ENDPOINT"),
            (["OFFSITE": "s3://bucket", "OFFSITE_NAME": "a/b"], "OFFSITE_NAME"),
            (["OFFSITE": "s3://bucket", "OFFSITE_PART_SIZE_MB": "1"], "OFFSITE_PART_SIZE_MB"),
            (["OFFSITE": "s3://bucket", "OFFSITE_ADDRESSING": "dns"], "OFFSITE_ADDRESSING"),
            (["OFFSITE_ENDPOINT": "http://127.0.0.1:9000"], "OFFSITE"),
        ]
        for (values, key) in cases {
            XCTAssertThrowsError(try settings(values.merging(keys) { a, _ in a })) { error in
                let message = (error as? UserFacingError)?.message ?? "\(error)"
                XCTAssertTrue(message.contains(key), "\(values): \(message)")
                XCTAssertEqual((error as? UserFacingError)?.exitStatus, .usage, message)
            }
        }
    }

    func testCredentialsComeFromConfigThenEnvironmentThenSharedFile() throws {
        let dir = try TestSupport.scratch("creds")
        defer { try? FileOps.removeTree(dir) }
        try TestSupport.write("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n[other]\naws_access_key_id=OTHER\naws_secret_access_key=othersecret\naws_session_token=tok\n",
                              to: dir + "/credentials", mode: 0o600)
        let env = ["AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials"]
        var s = try XCTUnwrap(try settings(["OFFSITE": "s3://bucket"], env: env))
        XCTAssertEqual(s.s3.credentials.accessKeyID, "FILEKEY")
        s = try XCTUnwrap(try settings(["OFFSITE": "s3://bucket", "OFFSITE_PROFILE": "other"], env: env))
        XCTAssertEqual(s.s3.credentials.secretAccessKey, "othersecret")
        XCTAssertEqual(s.s3.credentials.sessionToken, "tok")
        s = try XCTUnwrap(try settings(["OFFSITE": "s3://bucket"], env: env.merging(["AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret"]) { a, _ in a }))
        XCTAssertEqual(s.s3.credentials.accessKeyID, "ENVKEY")
        s = try XCTUnwrap(try settings(["OFFSITE": "s3://bucket", "OFFSITE_ACCESS_KEY_ID": "CFG", "OFFSITE_SECRET_ACCESS_KEY": "cfgsecret"], env: env))
        XCTAssertEqual(s.s3.credentials.accessKeyID, "CFG")
        // The shared file's secret is redacted like a config secret.
        let config = Config(file: "/etc/b.env", values: ["OFFSITE": "s3://bucket"], environment: env)
        XCTAssertEqual(OffsiteSettings.extraSecrets(config: config), ["filesecret"])
        XCTAssertEqual(Redactor(secrets: config.secretValues + OffsiteSettings.extraSecrets(config: config)).redact("x filesecret y"), "x *** y")
        // No keys anywhere: the error names the key to set.
        XCTAssertThrowsError(try settings(["OFFSITE": "s3://bucket"], env: ["AWS_SHARED_CREDENTIALS_FILE": dir + "/none", "HOME": dir])) { error in
            XCTAssertTrue(((error as? UserFacingError)?.message ?? "").contains("OFFSITE_ACCESS_KEY_ID"), "\(error)")
        }
    }
}
