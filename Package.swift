// swift-tools-version:6.1
import PackageDescription

// One target per layer; see docs/architecture.md.
//   CLua               system library (Debian's liblua5.4-dev) with a shim header
//   CFastCGI           the transport's C edge: fastcgi.h's definitions (libfcgi-dev), epoll, accept4
//   CLuaSupport        the little C that must be able to raise Lua errors (longjmp)
//   SystemSupport      threads with a chosen stack size, a mutex with a condition
//   LuaRuntime         the resident state: load, call, convert, limits; knows nothing of HTTP
//   CSQLite            system library (Debian's libsqlite3-dev)
//   AccessControl      tokens: format, SQLite store, authentication decisions
//   ExecService        requests, auth, routing, rendering; knows nothing of FastCGI
//   FastCGI            the transport: an epoll loop, FastCGI records parsed and written here
//   CYAML              system library (Debian's libyaml-dev)
//   DaemonConfig       luaexecd's settings and its config file (YAML, read with libyaml)
//   CRemote            the client's C edge: Debian's libcurl (HTTPS with a pinned key), OpenSSL
//                      (the key's fingerprint), libedit (line editing and history), all opened
//                      with dlopen when the client first needs them
//   RemoteClient       `luaexec login|eval|repl`: remotes, requests, the repl's Lua printing
//   LuaexecCommands    the `luaexec` command line (tokens, config, endpoints, the client)
//   luaexecd, luaexec  thin executables; luaexecd also runs as `luaexec` when called by that name
let package = Package(
    name: "luaexec",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "luaexecd", targets: ["luaexecd"]),
        .executable(name: "luaexec", targets: ["luaexec"]),
        // For the engine micro-benchmarks in bench/engine/ (bench/README.md).
        .library(name: "LuaRuntime", targets: ["LuaRuntime"]),
        .library(name: "AccessControl", targets: ["AccessControl"]),
        .library(name: "ExecService", targets: ["ExecService"]),
        .library(name: "FastCGI", targets: ["FastCGI"]),
        .library(name: "HTTPCore", targets: ["HTTPCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "4.5.2"),
        // Metrics (SPEC M5): the ecosystem's API, and its Prometheus backend. Neither imports
        // full Foundation.
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        // fastcgi.h (libfcgi-dev) for the protocol's definitions, and accept4; nothing of libfcgi
        // is linked.
        .target(name: "CFastCGI"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "CLuaSupport",
            dependencies: ["CLua"],
            cSettings: [.unsafeFlags(["-I/usr/include/lua5.4"])]
        ),
        .target(name: "SystemSupport"),
        // What a request and its answer are, and how a transport hands them over (`Responder`):
        // the transport and the service both depend on it, and on nothing of each other.
        .target(name: "HTTPCore", dependencies: ["SystemSupport"]),
        .target(
            name: "LuaRuntime",
            dependencies: [
                "CLua", "CLuaSupport", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "AccessControl",
            dependencies: [
                "CSQLite", "SystemSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ExecService",
            dependencies: [
                "HTTPCore", "LuaRuntime", "AccessControl", "SystemSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "FastCGI",
            dependencies: ["CFastCGI", "HTTPCore", "SystemSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .target(name: "DaemonConfig", dependencies: ["CYAML", "SystemSupport"]),
        .executableTarget(
            name: "luaexecd",
            dependencies: [
                "DaemonConfig", "LuaexecCommands", "FastCGI", "HTTPCore", "ExecService", "LuaRuntime", "AccessControl", "SystemSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // libcurl, libcrypto and libedit are opened with dlopen when the client needs them, not
        // linked: the daemon, the same executable, never does (CRemote/libraries.c).
        .target(name: "CRemote"),
        .target(name: "RemoteClient", dependencies: ["CRemote", "CLua", "SystemSupport"]),
        .target(
            name: "LuaexecCommands",
            dependencies: [
                "AccessControl", "RemoteClient", "CRemote", "SystemSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "luaexec", dependencies: ["LuaexecCommands"]),
        .testTarget(name: "LuaRuntimeTests", dependencies: ["LuaRuntime", "CLua", "SystemSupport"]),
        .testTarget(name: "AccessControlTests", dependencies: ["AccessControl", "SystemSupport"]),
        .testTarget(name: "ExecServiceTests", dependencies: ["ExecService", "HTTPCore", "AccessControl", "LuaRuntime", "SystemSupport"]),
        // The transport's tests need no Lua, SQLite or tokens.
        .testTarget(name: "FastCGITests", dependencies: ["FastCGI", "CFastCGI", "HTTPCore", "SystemSupport"]),
        .testTarget(name: "DaemonConfigTests", dependencies: ["DaemonConfig"]),
        .testTarget(name: "SystemSupportTests", dependencies: ["SystemSupport"]),
        .testTarget(name: "RemoteClientTests", dependencies: ["RemoteClient"]),
        .testTarget(name: "IntegrationTests", dependencies: ["AccessControl", "FastCGI", "HTTPCore", "SystemSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
