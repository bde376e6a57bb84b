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
        // The data path, bottom to top (docs/architecture.md): each module
        // depends only on modules listed before it. Everything up to the
        // sinks is pure Swift: no libbpf, no root.
        // Errors, errno names, locks, the worker thread and hand-off queue, gzip.
        .target(name: "SynsightBase", dependencies: ["CSynsightZlib"]),
        // The record model: kernel events (decoded from bpf/synsight_abi.h),
        // records, reasons, causes, JSON Lines reading and writing, text
        // lines, workload and node identity, host-state parsers.
        .target(name: "SynsightModel", dependencies: ["SynsightBase", "CSynsightABI"]),
        // nftables rulesets (libnftables JSON), owners of tables and chains,
        // and the one rule matcher trace and explain share.
        .target(name: "SynsightNftables", dependencies: ["SynsightBase", "SynsightModel"]),
        // Attribution: the engine and one folder per reason area.
        .target(
            name: "SynsightAttribution",
            dependencies: ["SynsightBase", "SynsightModel", "SynsightNftables"]
        ),
        // Sinks that need no kernel: recordings, reports, explain.
        .target(name: "SynsightRecording", dependencies: ["SynsightBase", "SynsightModel"]),
        .target(name: "SynsightReport", dependencies: ["SynsightBase", "SynsightModel"]),
        .target(
            name: "SynsightExplain",
            dependencies: ["SynsightBase", "SynsightModel", "SynsightNftables"]
        ),
        // The only module that talks to the kernel.
        .target(
            name: "SynsightKernel",
            dependencies: [
                "SynsightBase", "SynsightModel", "SynsightNftables",
                "CSynsightABI", "CLibBPF", "CSynsightShim", "CNftables",
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BPFObjectPlugin"]
        ),
        // Prometheus /metrics: counters, listener gauges, the small HTTP server. No root.
        .target(
            name: "SynsightMetrics",
            dependencies: ["SynsightBase", "SynsightModel", .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        // The sessions: a trace (ring buffer -> hand-off -> attribution ->
        // sinks) and explain's live snapshot of a port. Wires the kernel
        // module to attribution and the sinks; the CLI only parses arguments.
        .target(
            name: "SynsightPipeline",
            dependencies: [
                "SynsightBase", "SynsightModel", "SynsightNftables", "SynsightAttribution",
                "SynsightRecording", "SynsightReport", "SynsightExplain", "SynsightKernel",
                "SynsightMetrics", "CSynsightShim",
            ]
        ),
        .executableTarget(
            name: "synsight",
            dependencies: [
                "SynsightBase", "SynsightModel", "SynsightNftables", "SynsightAttribution",
                "SynsightRecording", "SynsightReport", "SynsightExplain",
                "SynsightKernel", "SynsightMetrics", "SynsightPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Fuzz targets for the parsers of untrusted input (recordings, gzip,
        // metrics requests): libFuzzer under scripts/fuzz.sh, a replayer of
        // the regression corpus (Tests/Fixtures/fuzz) in the normal build.
        .target(name: "CSynsightFuzz"),
        .executableTarget(name: "SynsightFuzz", dependencies: ["SynsightBase", "SynsightModel", "SynsightReport", "SynsightMetrics", "CSynsightFuzz"]),
        // Host tool run by the plugin: compiles bpf/*.bpf.c and embeds the objects.
        .executableTarget(name: "bpf-embed"),
        .plugin(
            name: "BPFObjectPlugin",
            capability: .buildTool(),
            dependencies: ["bpf-embed"]
        ),
        // Fixtures shared by the unit-test targets (raw ABI records, events,
        // records, temporary files). Built only for tests.
        .target(
            name: "SynsightTestSupport",
            dependencies: ["SynsightBase", "SynsightModel", "SynsightNftables", "SynsightAttribution", "CSynsightABI"],
            path: "Tests/SynsightTestSupport"
        ),
        .testTarget(name: "SynsightBaseTests", dependencies: ["SynsightTestSupport", "SynsightBase"]),
        .testTarget(name: "SynsightModelTests", dependencies: ["SynsightTestSupport", "SynsightBase", "SynsightModel", "CSynsightABI"]),
        .testTarget(name: "SynsightNftablesTests", dependencies: ["SynsightTestSupport", "SynsightBase", "SynsightModel", "SynsightNftables", "SynsightExplain"]),
        .testTarget(name: "SynsightAttributionTests", dependencies: ["SynsightTestSupport", "SynsightBase", "SynsightModel", "SynsightNftables", "SynsightAttribution", "CSynsightABI"]),
        .testTarget(name: "SynsightRecordingTests", dependencies: ["SynsightTestSupport", "SynsightBase", "SynsightModel", "SynsightRecording"]),
        .testTarget(name: "SynsightReportTests", dependencies: ["SynsightTestSupport", "SynsightBase", "SynsightModel", "SynsightReport"]),
        .testTarget(name: "SynsightExplainTests", dependencies: ["SynsightTestSupport", "SynsightBase", "SynsightModel", "SynsightNftables", "SynsightExplain"]),
        .testTarget(name: "SynsightCLITests"),
        .testTarget(name: "SynsightMetricsTests", dependencies: ["SynsightMetrics", "SynsightModel"]),
        // The kernel module without root (host readers, the probe plan on
        // synthetic probe results) and, as root, the probe plan on this
        // kernel (probes cached, unselected programs not loaded).
        .testTarget(name: "SynsightKernelTests", dependencies: ["SynsightBase", "SynsightModel", "SynsightKernel", "CLibBPF", "CSynsightShim", "CSynsightABI"]),
        // Root-only: real BPF, real sockets, in namespaces the tests create.
        .testTarget(
            name: "SynsightEndToEndTests",
            exclude: ["Support/peer.py", "Support/conntrack_peer.py", "Support/healthy.py", "Support/in-cgroupns.sh"]
        ),
    ]
)
