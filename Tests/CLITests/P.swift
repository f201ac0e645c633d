import XCTest
final class PTests: XCTestCase { func testNothing() {} }
