// swift-tools-version:6.1
import PackageDescription

// Engine micro-benchmarks (ordo-one/benchmark), kept out of the main package so that `make test`
// does not build the benchmark framework. Run: `swift package benchmark` here, or `make bench`
// (bench/README.md). The benchmark package is pinned exactly, as the main package's are.
let package = Package(
    name: "luaexec-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "luaexec", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Engine",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LuaRuntime", package: "luaexec"),
                .product(name: "ExecService", package: "luaexec"),
                .product(name: "AccessControl", package: "luaexec"),
                .product(name: "FastCGI", package: "luaexec"),
                .product(name: "HTTPCore", package: "luaexec"),
            ],
            path: "Benchmarks/Engine",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
