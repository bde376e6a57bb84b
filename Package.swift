// swift-tools-version: 6.0
// Swift 6 language mode (strict concurrency: complete) is the default for
// every target of a 6.0 manifest; nothing below opts out of it.
import PackageDescription

let package = Package(
    name: "synsight",
    products: [
        .executable(name: "synsight", targets: ["synsight"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The kernel<->user records, defined once in bpf/synsight_abi.h.
        .target(name: "CSynsightABI"),
        // libbpf itself, through pkg-config.
        .systemLibrary(
            name: "CLibBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev"])]
        ),
        // libnftables: rulesets read in-process (what `nft -j list ruleset` prints).
        .systemLibrary(
            name: "CNftables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        // Small C helpers for libbpf APIs that do not import well into Swift
        // (variadic print callback, option-struct macros).
        .target(
            name: "CSynsightShim",
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        // zlib's gzip init macros wrapped for Swift (compressed recordings).
        .target(name: "CSynsightZlib", linkerSettings: [.linkedLibrary("z")]),
        // Pure Swift: event model, decoding, attribution, output. No libbpf, no root.
        .target(name: "SynsightCore", dependencies: ["CSynsightABI", "CSynsightZlib"]),
        // The only module that talks to the kernel.
        .target(
            name: "SynsightKernel",
            dependencies: [
                "SynsightCore", "CSynsightABI", "CLibBPF", "CSynsightShim", "CNftables",
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BPFObjectPlugin"]
        ),
        // Prometheus /metrics: counters, listener gauges, the small HTTP server. No root.
        .target(
            name: "SynsightMetrics",
            dependencies: ["SynsightCore", .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        .executableTarget(
            name: "synsight",
            dependencies: [
                "SynsightCore", "SynsightKernel", "SynsightMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Fuzz targets for the parsers of untrusted input (recordings, gzip,
        // metrics requests): libFuzzer under scripts/fuzz.sh, a replayer of
        // the regression corpus (Tests/Fixtures/fuzz) in the normal build.
        .target(name: "CSynsightFuzz"),
        .executableTarget(name: "SynsightFuzz", dependencies: ["SynsightCore", "SynsightMetrics", "CSynsightFuzz"]),
        // Host tool run by the plugin: compiles bpf/*.bpf.c and embeds the objects.
        .executableTarget(name: "bpf-embed"),
        .plugin(
            name: "BPFObjectPlugin",
            capability: .buildTool(),
            dependencies: ["bpf-embed"]
        ),
        .testTarget(name: "SynsightCoreTests", dependencies: ["SynsightCore", "CSynsightABI"]),
        .testTarget(name: "SynsightCLITests"),
        .testTarget(name: "SynsightMetricsTests", dependencies: ["SynsightMetrics", "SynsightCore"]),
        // The probe plan on synthetic probe results (no root), and against
        // this kernel (root: probes cached, unselected programs not loaded).
        .testTarget(name: "SynsightKernelTests", dependencies: ["SynsightKernel", "SynsightCore", "CLibBPF", "CSynsightShim"]),
        // Root-only: real BPF, real sockets, in namespaces the tests create.
        .testTarget(
            name: "SynsightEndToEndTests",
            exclude: ["Support/peer.py"]
        ),
    ]
)
