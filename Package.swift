// swift-tools-version: 6.0
import PackageDescription

/// Backstop: one backup engine, pluggable targets, thin per-deployment executables.
let package = Package(
    name: "Backstop",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "backstop", targets: ["backstop"]),
        .executable(name: "journal-backup", targets: ["journal-backup"]),
        .executable(name: "schedgen-backup", targets: ["schedgen-backup"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C libraries, linked through pkg-config. Only the thin layers in Targets/Native
        // and BackupCore/Native touch these modules.
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CPostgres", path: "Sources/CPostgres", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        // The only C code: typed wrappers for the variadic curl_easy_setopt, glibc calls that
        // need _GNU_SOURCE, fork+exec of children that die with Backstop, openat2 (no glibc
        // wrapper) and a per-thread locale switch.
        .target(name: "CShims", dependencies: ["CCurl"], path: "Sources/CShims"),

        .target(
            name: "BackupCore",
            dependencies: [
                "CShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Targets",
            dependencies: ["BackupCore", "CArchive", "CSQLite", "CPostgres"]
        ),
        .target(
            name: "CLI",
            dependencies: [
                "BackupCore", "Targets",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "backstop", dependencies: ["CLI"], path: "Sources/Frontends/backstop"),
        .executableTarget(name: "journal-backup", dependencies: ["CLI"], path: "Sources/Frontends/journal-backup"),
        .executableTarget(name: "schedgen-backup", dependencies: ["CLI"], path: "Sources/Frontends/schedgen-backup"),

        // Helpers shared by the test targets: scratch folders, running the built executables.
        .target(name: "TestSupport", dependencies: ["BackupCore", .product(name: "Logging", package: "swift-log")],
                path: "Tests/TestSupport"),
        .testTarget(name: "BackupCoreTests", dependencies: ["BackupCore", "TestSupport"],
                    resources: [.copy("Resources/age-testkit")]),
        .testTarget(name: "TargetsTests", dependencies: ["Targets", "BackupCore", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["CLI", "BackupCore", "Targets", "TestSupport"]),
    ]
)
