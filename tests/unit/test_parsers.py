"""Every recorded tool output, shared and our own, through its parser, with concrete values asserted."""

import hashlib
import json
import typing
from inspect import signature

import pytest

from checks.facts import VendorReport
from checks.parsers import amd, ascend, daemons, host, network, nvidia, others, ppu, system
from tests.conftest import FIXTURES

from .conftest import DESELECTED, FIXTURES_READ

DOC_FIELDS = ("index", "name", "memory.total", "memory.used", "utilization.gpu", "temperature.gpu")


def devices(report: VendorReport) -> list[tuple]:
    return [(d.index, d.model, d.memory_mib, d.pci_address) for d in report.devices]


# (fixture, parser, check) -- check receives the parser's result and returns what must equal `expected`.
NVIDIA_XML = [
    ("netdata_rtx-2080-win_q-x.xml", "516.59", "11.7", [(0, "NVIDIA GeForce RTX 2080", 8192, "0000:0a:00.0")]),
    (
        "netdata_rtx-3060_q-x.xml",
        "515.65.01",
        "11.7",
        [(0, "NVIDIA GeForce RTX 3060 Laptop GPU", 6144, "0000:01:00.0")],
    ),
    (
        "netdata_rtx-4090-driver-535_q-x.xml",
        "535.86.05",
        "12.2",
        [(0, "NVIDIA GeForce RTX 4090", 24564, "0000:84:00.0")],
    ),
    ("netdata_tesla-p100_q-x.xml", "510.47.03", "11.6", [(0, "Tesla P100-PCIE-16GB", 16384, "0000:00:04.0")]),
    ("telegraf_a100-sxm4-v12_q-x.xml", "535.54.03", "12.2", [(1, "NVIDIA A100-SXM4-80GB", 81920, "0000:01:00.0")]),
    ("telegraf_a10g_q-x.xml", "515.105.01", "11.7", [(0, "NVIDIA A10G", 23028, "0000:00:1e.0")]),
    (
        "telegraf_dual-2080-v13_q-x.xml",
        "590.44.01",
        "13.1",
        [(0, "NVIDIA GeForce RTX 2080", 8192, "0000:01:00.0"), (1, "NVIDIA GeForce RTX 2080", 8192, "0000:02:00.0")],
    ),
    (
        "telegraf_dual-a5000-v13_q-x.xml",
        "590.44.01",
        "13.1",
        [(1, "NVIDIA RTX A5000", 24564, "0000:81:00.0"), (0, "NVIDIA RTX A5000", 24564, "0000:c1:00.0")],
    ),
    ("telegraf_gt-1030_q-x.xml", "470.74", "11.4", [(0, "NVIDIA GeForce GT 1030", 1998, "0000:2d:00.0")]),
    ("telegraf_gtx-1660-ti_q-x.xml", "418.43", "10.1", [(0, "Graphics Device", 5912, "0000:43:00.0")]),
    ("telegraf_quadro-p2000-v12_q-x.xml", "525.125.06", "12.0", [(0, "Quadro P2000", 5120, "0000:17:00.0")]),
    ("telegraf_quadro-p400_q-x.xml", "418.43", "10.1", [(0, "Quadro P400", 1998, "0000:43:00.0")]),
    ("telegraf_rtx-3060-v12_q-x.xml", "570.124.04", "12.8", [(0, "NVIDIA GeForce RTX 3060", 12288, "0000:2d:00.0")]),
    ("telegraf_rtx-3080-v13_q-x.xml", "595.58.03", "13.2", [(0, "NVIDIA GeForce RTX 3080", 10240, "0000:0c:00.0")]),
    ("telegraf_rtx-3090-v12_q-x.xml", "525.147.05", "12.0", [(0, "NVIDIA GeForce RTX 3090", 24576, "0000:00:10.0")]),
    (
        "telegraf_rtx-4000-sff-ada-v13_q-x.xml",
        "595.84",
        "13.2",
        [(0, "NVIDIA RTX 4000 SFF Ada Generation", 20475, "0000:06:00.0")],
    ),
    ("telegraf_tesla-t4_q-x.xml", "515.105.01", "11.7", [(0, "Tesla T4", 15360, "0000:00:1e.0")]),
]


@pytest.mark.parametrize(("_case", "driver", "cuda", "expected"), NVIDIA_XML, ids=[c[0] for c in NVIDIA_XML])
def test_nvidia_smi_xml(_case, driver, cuda, expected, read_fixture):
    report = nvidia.parse_nvidia_smi_xml(read_fixture(f"shared:nvidia-smi/{_case}"))
    assert (report.driver_version, report.runtime_version, devices(report)) == (driver, cuda, expected)
    assert all(d.uuid.startswith("GPU-") for d in report.devices)


NVIDIA_TABLES = [
    (
        "nge-capture_h100-80gb-hbm3_590.48.01_idle_table.txt",
        "590.48.01",
        "13.1",
        [(0, "NVIDIA H100 80GB HBM3", 81559, "0000:00:09.0")],
    ),
    (
        "nge-capture_h100-80gb-hbm3_590.48.01_load_table.txt",
        "590.48.01",
        "13.1",
        [(0, "NVIDIA H100 80GB HBM3", 81559, "0000:00:09.0")],
    ),
    (
        "nge-capture_h100-mig_590.48.01_idle_table.txt",
        "590.48.01",
        "13.1",
        [(0, "NVIDIA H100 80GB HBM3", 81559, "0000:00:09.0")],
    ),
    ("nge-capture_l40s_595.80_idle_table.txt", "595.80", "13.2", [(0, "NVIDIA L40S", 46068, "0000:01:00.0")]),
    (
        "nge-capture_rtx-2080-super_595.71.05_idle_table.txt",
        "595.71.05",
        "13.2",
        [(0, "NVIDIA GeForce RTX 2080 ...", 8192, "0000:0c:00.0")],
    ),
    (
        "nge-capture_rtx-4080-super_595.71.05_idle_table.txt",
        "595.71.05",
        "13.2",
        [(0, "NVIDIA GeForce RTX 4080 ...", 16376, "0000:01:00.0")],
    ),
    (
        "nge-capture_windows_rtx-2080-super_591.86_idle_table.txt",
        "591.86",
        "13.1",
        [(0, "NVIDIA GeForce RTX 2080 ...", 8192, "0000:0c:00.0")],
    ),
]


@pytest.mark.parametrize(("_case", "driver", "cuda", "expected"), NVIDIA_TABLES, ids=[c[0] for c in NVIDIA_TABLES])
def test_nvidia_smi_table(_case, driver, cuda, expected, read_fixture):
    report = nvidia.parse_nvidia_smi_table(read_fixture(f"shared:nvidia-smi/{_case}"))
    assert (report.driver_version, report.runtime_version, devices(report)) == (driver, cuda, expected)


NVIDIA_CSV = [
    (
        "shared:nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_query-gpu-allfields.csv",
        None,
        "590.48.01",
        [(0, "NVIDIA H100 80GB HBM3", 81559, "0000:00:09.0")],
    ),
    (
        "shared:nvidia-smi/nge-capture_h100-mig_590.48.01_idle_query-gpu-allfields.csv",
        None,
        "590.48.01",
        [(0, "NVIDIA H100 80GB HBM3", 81559, "0000:00:09.0")],
    ),
    (
        "shared:nvidia-smi/nge-capture_rtx-2080-super_610.57.04_idle_query-gpu-allfields.csv",
        None,
        "610.57.04",
        [(0, "NVIDIA GeForce RTX 2080 SUPER", 8192, "0000:0c:00.0")],
    ),
    (
        "shared:nvidia-smi/nge-capture_rtx-4080-super_595.71.05_idle_query-gpu-allfields.csv",
        None,
        "595.71.05",
        [(0, "NVIDIA GeForce RTX 4080 SUPER", 16376, "0000:01:00.0")],
    ),
    ("shared:nvidia-smi/netdata_tesla-p100_query-gpu.csv", None, "", [(0, "Tesla P100-PCIE-16GB", None, "")]),
    (
        "shared:nvidia-smi/rtx4080super-x2_query-gpu-csv-noheader_gpustack-docstring.csv",
        DOC_FIELDS,
        "",
        [(0, "NVIDIA GeForce RTX 4080 SUPER", 16376, ""), (1, "NVIDIA GeForce RTX 4080 SUPER", 16376, "")],
    ),
    (
        "own:nvidia-smi/h100-80gb-hbm3_590.48.01_query-gpu-csv-noheader.csv",
        None,
        "590.48.01",
        [(0, "NVIDIA H100 80GB HBM3", 81559, "")],
    ),
]


@pytest.mark.parametrize(("_case", "fields", "driver", "expected"), NVIDIA_CSV, ids=[c[0] for c in NVIDIA_CSV])
def test_nvidia_smi_query_csv(_case, fields, driver, expected, read_fixture):
    text = read_fixture(_case)
    report = nvidia.parse_nvidia_smi_query(text, fields) if fields else nvidia.parse_nvidia_smi_query(text)
    assert (report.driver_version, devices(report)) == (driver, expected)


@pytest.mark.parametrize(
    ("_case", "expected"),
    [
        ("nge-capture_h100-80gb-hbm3_590.48.01_L.txt", [(0, "NVIDIA H100 80GB HBM3")]),
        ("nge-capture_h100-mig_590.48.01_L.txt", [(0, "NVIDIA H100 80GB HBM3")]),
        ("nge-capture_h200-mig_590.48.01_L.txt", None),
        ("nge-capture_h200_590.48.01_L.txt", None),
        ("nge-capture_rtx-4080-super_595.71.05_L.txt", [(0, "NVIDIA GeForce RTX 4080 SUPER")]),
        ("a30_535.183.01_L_3-mig-devices.txt", [(0, "NVIDIA A30")]),
    ],
)
def test_nvidia_smi_list(_case, expected, read_fixture):
    report = nvidia.parse_nvidia_smi_list(read_fixture(f"shared:nvidia-smi/{_case}"))
    got = [(d.index, d.model) for d in report.devices]
    if expected is None:  # the H200 captures: one GPU whose name says H200
        assert len(got) == 1 and "H200" in got[0][1]
    else:
        assert got == expected
    assert all(d.uuid.startswith("GPU-") for d in report.devices)


def test_nvidia_smi_version(read_fixture):
    version = nvidia.parse_nvidia_smi_version(
        read_fixture("shared:nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_version.txt")
    )
    assert (version.driver_version, version.runtime_version, version.tool_version) == ("590.48.01", "13.1", "590.48.01")


# Every header layout in the fixtures: R610's "KMD Version" / "CUDA UMD Version" (Linux and Windows), the 89-column
# layout of R535-R595 (above, shared), the 79-column layout of R440-R515, and WSL's split NVIDIA-SMI/driver versions.
NVIDIA_TABLE_LAYOUTS = [
    (
        "nge-capture_rtx-2080-super_610.57.04_idle_table.txt",
        "610.57.04",
        "13.3",
        [(0, "NVIDIA GeForce RTX 2080 ...", 8192, "0000:0c:00.0")],
    ),
    (
        "nge-capture_windows_rtx-2080-super_610.62_idle_table.txt",
        "610.62",
        "13.3",
        [(0, "NVIDIA GeForce RTX 2080 ...", 8192, "0000:0c:00.0")],
    ),
    (
        "mxochicale-code_rtx-2070-laptop_440.100_table.txt",
        "440.100",
        "10.2",
        [(0, "GeForce RTX 207...", 7973, "0000:01:00.0")],
    ),
    (
        "hershey890-cs259_titan-v_515.65.01_table.txt",
        "515.65.01",
        "11.7",
        [(0, "NVIDIA TITAN V", 12288, "0000:af:00.0")],
    ),
    (
        "hershey890-cs259_wsl_rtx-3070_530.47-driver-531.68_table.txt",
        "531.68",
        "12.1",
        [(0, "NVIDIA GeForce RTX 3070", 8192, "0000:2b:00.0")],
    ),
]


@pytest.mark.parametrize(
    ("_case", "driver", "cuda", "expected"), NVIDIA_TABLE_LAYOUTS, ids=[c[0] for c in NVIDIA_TABLE_LAYOUTS]
)
def test_nvidia_smi_table_layouts(_case, driver, cuda, expected, read_fixture):
    report = nvidia.parse_nvidia_smi_table(read_fixture(f"own:nvidia-smi/{_case}"))
    assert (report.driver_version, report.runtime_version, devices(report)) == (driver, cuda, expected)


@pytest.mark.parametrize(
    ("_case", "driver", "cuda", "expected"),
    [
        (
            "own:nvidia-smi/slackr31337-wyoming-piper-gpu-pr20_tesla-p4_550.135_table.txt",
            "550.135",
            "12.4",
            [(0, "Tesla P4", 8192, "0000:86:00.0")],
        ),
        (
            "own:nvidia-smi/built_tesla-p100_580.95.05_table.txt",
            "580.95.05",
            "13.0",
            [(0, "Tesla P100-PCIE-16GB", 16384, "0000:00:04.0")],
        ),
    ],
)
def test_nvidia_smi_table_of_pascal_gpus(_case, driver, cuda, expected, read_fixture):
    report = nvidia.parse_nvidia_smi_table(read_fixture(_case))
    assert (report.driver_version, report.runtime_version, devices(report)) == (driver, cuda, expected)


@pytest.mark.parametrize(
    ("_case", "expected"),
    [
        ("own:nvidia-smi/built_query-gpu-compute-cap_tesla-p100.csv", {0: "6.0"}),
        ("own:nvidia-smi/built_query-gpu-compute-cap_unknown-field.txt", {}),  # an older driver: no answer, no guess
        ("own:nvidia-smi/h100-80gb-hbm3_590.48.01_query-gpu-csv-noheader.csv", {}),  # another query's rows
    ],
)
def test_nvidia_smi_compute_cap_query(_case, expected, read_fixture):
    assert nvidia.parse_nvidia_smi_compute_cap(read_fixture(_case)) == expected


@pytest.mark.parametrize(
    ("_case", "expected"),
    [
        ("shared:nvidia-smi/nge-capture_h100-80gb-hbm3_590.48.01_idle_query-gpu-allfields.csv", "9.0"),
        ("shared:nvidia-smi/nge-capture_rtx-2080-super_610.57.04_idle_query-gpu-allfields.csv", "7.5"),
        ("shared:nvidia-smi/nge-capture_rtx-4080-super_595.71.05_idle_query-gpu-allfields.csv", "8.9"),
    ],
)
def test_nvidia_smi_query_with_header_reads_compute_cap(_case, expected, read_fixture):
    report = nvidia.parse_nvidia_smi_query(read_fixture(_case))
    assert [d.compute_capability for d in report.devices] == [expected]


def test_nvidia_r610_version_names_the_kmd_and_umd_versions(read_fixture):
    r = lambda name: read_fixture(f"own:nvidia-smi/{name}")  # noqa: E731
    version = nvidia.parse_nvidia_smi_version(r("nge-capture_rtx-2080-super_610.57.04_version.txt"))
    assert (version.driver_version, version.runtime_version, version.tool_version) == ("610.57.04", "13.3", "610.57.04")


def test_r610_header_reaches_the_node_facts(read_fixture):
    # given: a node whose nvidia-smi prints the R610 header
    from checks.node_facts import build_facts
    from checks.probe import Section

    sections = {
        "tools": Section("tools", "nvidia-smi /usr/bin/nvidia-smi", 0),
        "pci": Section("pci", "0000:0c:00.0 0x10de 0x030000 0x1e81", 0),
        "nvidia-smi": Section(
            "nvidia-smi", read_fixture("own:nvidia-smi/nge-capture_rtx-2080-super_610.57.04_idle_table.txt"), 0
        ),
    }
    # when
    facts = build_facts(sections)
    # then
    report = facts.vendors["nvidia"].report
    assert (report.driver_version, report.runtime_version) == ("610.57.04", "13.3")


def test_nvidia_driver_not_loaded_lists_nothing(read_fixture):
    report = nvidia.parse_nvidia_smi_table(read_fixture("own:nvidia-smi/driver-not-loaded.txt"))
    assert report.devices == [] and report.driver_version == ""


def test_amd_smi_static(read_fixture):
    report = amd.parse_amd_smi_static(read_fixture("shared:amd-smi/mi300a-x4_amd-smi-static_readme-2024.txt"))
    assert report.driver_version == "6.9.0-rc5+"
    assert len(report.devices) == 4 and {d.model for d in report.devices} == {"MI300A"}
    assert (report.devices[0].memory_mib, report.devices[0].uuid, report.devices[0].pci_address) == (
        64289,
        "0x7E8F7E20764E2714",
        "0000:01:00.0",
    )


def test_amd_smi_static_value_where_a_section_belongs():
    # given: a node that prints `ASIC: text` where amd-smi prints an indented ASIC section
    report = amd.parse_amd_smi_static("GPU: 0\nASIC: flat\nBUS: 0000:01:00.0\nDRIVER:\n    VERSION: 6.9.0\n")
    # then: the section reads as empty, the rest still counts
    assert devices(report) == [(0, "", None, "")] and report.driver_version == "6.9.0"


ROCM = [
    ("amd-rx7800xt_rocm-6.2.4_rocm-smi-json.json", "", [(0, "Navi 32 [Radeon RX 7700 XT / 7800 XT]", 16368, "")]),
    ("hygon-dcu_dtk-24.04.3_rocm-smi-json.json", "", [(0, "DCU xxxx", 65520, "")]),
    ("hygon-z100l_rocm-smi-json.json", "", [(0, "Z100L", 32752, "")]),
    (
        "telegraf_mi100-rocm602_rocm-smi-json.json",
        "6.3.6",
        [
            (i, "Arcturus GL-XL [Instinct MI100]", 32752, bus)
            for i, bus in enumerate(["0000:83:00.0", "0000:a3:00.0", "0000:c3:00.0", "0000:e3:00.0"])
        ],
    ),
    ("telegraf_rx6700xt-rocm430_rocm-smi-json.json", "6.3.6", [(0, "", 12272, "0000:07:00.0")]),
    (
        "telegraf_rx6700xt-rocm571_rocm-smi-json.json",
        "6.3.6",
        [(0, "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", 12272, "0000:07:00.0")],
    ),
    (
        "telegraf_rx6700xt-rocm612_rocm-smi-json.json",
        "6.3.6",
        [(0, "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", 12272, "0000:07:00.0")],
    ),
    ("telegraf_vega-10-XT_rocm-smi-json.json", "5.9.25", [(0, "", 16368, "0000:04:00.0")]),
]


@pytest.mark.parametrize(("_case", "driver", "expected"), ROCM, ids=[c[0] for c in ROCM])
def test_rocm_smi_json(_case, driver, expected, read_fixture):
    report = amd.parse_rocm_smi_json(read_fixture(f"shared:rocm-smi/{_case}"))
    assert (report.driver_version, devices(report)) == (driver, expected)


NPU = [
    (
        "atlas800-inference-3000_310-x4_npu-smi-20.2.0_info.txt",
        "20.2.0",
        [
            (i, "Ascend 310", 8192, bus)
            for i, bus in enumerate(["0000:da:00.0", "0000:dc:00.0", "0000:dd:00.0", "0000:db:00.0"])
        ],
    ),
    ("atlas800-inference-3000_310-x4_npu-smi-21.0.4_info.txt", "21.0.4.B030", 4),
    ("atlas800-training-9010_910A-x8_npu-smi-22.0.3.1_info.txt", "22.0.3.1", 8),
]


@pytest.mark.parametrize(("_case", "version", "expected"), NPU, ids=[c[0] for c in NPU])
def test_npu_smi_info(_case, version, expected, read_fixture):
    report = ascend.parse_npu_smi_info(read_fixture(f"shared:npu-smi/{_case}"))
    assert report.driver_version == version
    if isinstance(expected, int):
        assert len(report.devices) == expected
    else:
        assert devices(report) == expected
    if "910A" in _case:
        assert {d.model for d in report.devices} == {"Ascend 910A"} and report.devices[0].memory_mib == 32768
        assert report.devices[1].pci_address == "0000:db:00.0"


def test_experimental_vendor_tools(read_fixture):
    hygon = others.parse_hy_smi(read_fixture("shared:hy-smi/hygon-k100ai-x4_hy-smi_dtk-24.04.1.txt"))
    assert [d.index for d in hygon.devices] == [0, 1, 2, 3]
    iluvatar = others.parse_ixsmi(read_fixture("shared:ixsmi/iluvatar-bi-v150-x16_ixsmi_ix-ml-4.1.0.txt"))
    assert (iluvatar.driver_version, iluvatar.runtime_version, len(iluvatar.devices)) == ("4.1.0", "10.2", 16)
    assert devices(iluvatar)[0] == (0, "Iluvatar BI-V150", 32768, "0000:13:00.0")
    metax = others.parse_mx_smi(read_fixture("shared:mx-smi/metax-mxc550-x8_mx-smi-2.1.6_maca-2.23.0.1018.txt"))
    assert (metax.driver_version, metax.runtime_version, len(metax.devices)) == ("2.5.014", "2.23.0.1018", 8)
    assert devices(metax)[0] == (0, "MXC550", 65536, "0000:2a:00.0")
    mthreads = others.parse_mthreads_gmi(
        read_fixture("shared:mthreads-gmi/mtt-s4000_mthreads-gmi-1.12.2_driver-1.2.0_fragment.txt")
    )
    assert (mthreads.driver_version, mthreads.tool_version) == ("1.2.0", "1.12.2")
    assert devices(mthreads) == [(0, "MTT S4000", 44302, "0000:08:00.0")]
    cambricon = others.parse_cnmon(read_fixture("shared:cnmon/cambricon-mlu-x8_cnmon-v5.10.31.txt"))
    assert (cambricon.driver_version, len(cambricon.devices)) == ("5.10.31", 8)
    assert devices(cambricon)[0] == (0, "MLUXXX-XX", None, "0000:4f:00.0")  # memory is masked in the recording


def test_ppu_smi_list_from_the_vendor_manual(read_fixture):
    # given: `ppu-smi -L` as Alibaba Cloud's PPU-SMI manual prints it
    report = ppu.parse_ppu_smi_list(read_fixture("shared:ppu-smi/alibaba-cloud-ppu-smi-manual_L_2-ppu.txt"))
    # then
    assert [(d.index, d.model, d.uuid) for d in report.devices] == [
        (0, "PPU", "GPU-019ea108-c110-0828-0000-0000c07e1a46"),
        (1, "PPU", "GPU-019ea108-c120-040c-0000-0000c0267f1e"),
    ]


def test_ppu_smi_built_fixtures_agree_with_gpustacks_detector(read_fixture):
    # given: the 16 PPU-ZW810E that GPUStack's detector recorded, and the ppu-smi texts built from them
    detected = json.loads(read_fixture("shared:ppu-smi/gpustack-runtime_detect-output_16x-ppu-zw810e.json"))
    listed = read_fixture("own:ppu-smi/ppu-zw810e-x16_L_built.txt")
    queried = read_fixture("own:ppu-smi/ppu-zw810e-x16_query-ppu-csv-nounits_built.csv")
    # when
    report = ppu.parse_ppu(listed, queried)
    only_list = ppu.parse_ppu(listed, "")
    # then: every device, with the detector's name, UUID, memory, bus id and driver
    assert [(d.index, d.model, d.uuid, d.memory_mib, d.pci_address) for d in report.devices] == [
        (x["index"], x["name"], x["uuid"], x["memory"], x["appendix"]["bdf"]) for x in detected
    ]
    assert report.driver_version == detected[0]["driver_version"] == "2.1.0-ra1f23041713"
    assert len(only_list.devices) == 16 and only_list.driver_version == "" and only_list.devices[0].memory_mib is None


def test_ppu_query_never_renames_a_listed_device_with_another_uuid():
    # given: a query row whose index matches but whose UUID names another device
    listed = "PPU 0: PPU (UUID: GPU-a)\n"
    queried = "index, name, uuid, pci.bus_id, memory.total, driver_version\n0, Other, GPU-b, 00000000:01:00.0, 1, 9\n"
    # then: the listed device keeps its name and gets no bus id
    assert [(d.model, d.uuid, d.pci_address) for d in ppu.parse_ppu(listed, queried).devices] == [("PPU", "GPU-a", "")]


def test_ip_addresses_and_routes_recorded_here(read_fixture):
    # given: `ip -o addr show` / `ip -o route get` recorded on this machine and in namespaces shaped like workers
    here = network.parse_ip_addresses(read_fixture("own:ip/this-machine_ip-o-addr-show.txt"))
    two = network.parse_ip_addresses(read_fixture("own:ip/netns-two-ipv4_ip-o-addr-show.txt"))
    six = network.parse_ip_addresses(read_fixture("own:ip/netns-ipv6-only_ip-o-addr-show.txt"))
    # then
    assert [(a.interface, a.address, a.prefix) for a in here if a.scope == "global"] == [
        ("eth0", "192.0.2.2", 24),
        ("eth0", "fd00::2", 64),
    ]
    assert [(a.interface, a.address) for a in two if a.family == "inet" and a.scope == "global"] == [
        ("eth0", "10.20.0.5"),
        ("docker0", "172.17.0.1"),
    ]
    assert [(a.family, a.address) for a in six if a.scope == "global"] == [("inet6", "2001:db8:20::5")]
    eth1 = network.parse_ip_addresses(read_fixture("own:ip/netns-eth0-eth1_ip-o-4-addr-show.txt"))
    assert [(a.interface, a.address) for a in eth1 if a.scope == "global"] == [
        ("eth0", "10.20.0.5"),
        ("eth1", "192.168.100.5"),
    ]
    assert network.parse_route_source(read_fixture("own:ip/this-machine_ip-o-route-get.txt")) == "192.0.2.2"
    assert network.parse_route_source(read_fixture("own:ip/netns-two-ipv4_ip-o-route-get-10.20.0.1.txt")) == (
        "10.20.0.5"
    )


def test_proxy_settings_from_every_place_they_are_read(read_fixture):
    # given: the daemon's proxy in docker info, the service environment, daemon.json and /etc/environment
    info = daemons.parse_docker_info(
        read_fixture("shared:docker-info/docker-for-mac-18.09.2_https-proxy-without-no-proxy.txt")
    )
    service = network.parse_systemd_environment(
        read_fixture("own:proxy/systemctl-show-docker-environment_cidr-no-proxy.txt")
    )
    unset = network.parse_systemd_environment(read_fixture("own:proxy/systemctl-show-docker-environment_none.txt"))
    daemon = network.parse_daemon_json_proxies(read_fixture("own:proxy/daemon-json_proxies.json"))
    login = network.parse_environment_file(read_fixture("own:proxy/etc-environment_proxy.txt"))
    # then
    assert (info.http_proxy, info.https_proxy, info.no_proxy, info.cgroup_driver, info.root_dir) == (
        "gateway.docker.internal:3128",
        "gateway.docker.internal:3129",
        "",
        "cgroupfs",
        "/var/lib/docker",
    )
    assert (service.https, service.no_proxy) == (
        "http://proxy.corp.example:3128",
        ["10.0.0.0/8", "localhost", "127.0.0.1"],
    )
    assert not unset.active and unset.no_proxy == []
    assert (daemon.http, daemon.https, daemon.no_proxy) == (
        "http://proxy.example.com:3128",
        "https://proxy.example.com:3129",
        ["*.test.example.com", ".example.org", "127.0.0.0/8"],
    )
    assert login.https == "http://proxy.corp.example:3128/" and "10.231.0.11" in login.no_proxy


def test_host_resources_and_identity_recorded_here(read_fixture):
    # given: `df -Pk` and MemTotal of this machine
    filesystems = host.parse_df(read_fixture("own:df/this-machine_df-Pk.txt"))
    # then: Docker's root lives on /, not on /dev/shm
    assert [(f.mount, f.available_kib) for f in filesystems] == [("/", 82357708), ("/dev/shm", 24682740)]
    assert host.filesystem_of("/var/lib/docker", filesystems).mount == "/"
    assert host.filesystem_of("/dev/shm/x", filesystems).mount == "/dev/shm"
    assert host.parse_meminfo_total_kib(read_fixture("own:meminfo/this-machine_memtotal.txt")) == 24683792
    # the ids arrive as `sha256sum` prints them, or raw from a node without it and hashed the same way here
    machine_id = "3d1219c7c4c5404aaa1f6d2a48adfda4"
    digest = hashlib.sha256(f"{machine_id}\n".encode()).hexdigest()
    assert host.parse_machine_id(f"{machine_id}\n") == host.parse_machine_id(f"{digest}  -\n") == digest
    assert host.parse_machine_id("uninitialized\n") == host.parse_product_uuid("cannot read x") == ""
    zeros = "00000000-0000-0000-0000-000000000000"
    assert host.parse_product_uuid(zeros) == host.parse_product_uuid(_sha256sum(zeros + "\n")) == ""
    dell = "4C4C4544-0042-3510-8051-B4C04F4E3332"
    assert host.parse_product_uuid(dell + "\n") == host.parse_product_uuid(_sha256sum(dell + "\n")) != ""


def _sha256sum(text: str) -> str:
    """What `sha256sum <file` prints for a file holding `text`."""
    return f"{hashlib.sha256(text.encode()).hexdigest()}  -\n"


def test_gpustack_containers_and_nvidia_runtime_mode(read_fixture):
    # given
    containers = host.parse_gpustack_containers(
        read_fixture("own:gpustack/docker-ps_two-gpustack.txt"),
        read_fixture("own:gpustack/docker-inspect_mirrored-name.txt"),
    )
    # then: the two gpustack/gpustack containers, one with its mirrored name set, the other without
    assert [(c.name, c.image, c.mirrored_name) for c in containers] == [
        ("gpustack-worker", "gpustack/gpustack:v2.3.0", "gpustack-worker"),
        ("gpustack-server", "docker.io/gpustack/gpustack:v2.2.3", ""),
    ]
    assert host.parse_nvidia_runtime_mode(read_fixture("own:nvidia-runtime-config/config-toml_mode-legacy.toml")) == (
        "legacy"
    )
    assert host.parse_nvidia_runtime_mode(read_fixture("own:nvidia-runtime-config/config-toml_mode-cdi.toml")) == "cdi"
    assert host.parse_nvidia_runtime_mode('[nvidia-container-runtime]\n#mode = "cdi"\n') == "auto"


DOCKER = [
    (
        "docker-archive_docker_v20.10.12.txt",
        "20.10.12",
        ["runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"],
    ),
    ("docker-archive_docker_v27.5.1.txt", "27.5.1", ["io.containerd.runc.v2", "runc"]),
    (
        "docker-archive_nvidia-container-toolkit_v1.10.0.txt",
        "20.10.17",
        ["nvidia", "runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"],
    ),
    ("docker-archive_nvidia-container-toolkit_v1.14.0.txt", "24.0.5", ["io.containerd.runc.v2", "nvidia", "runc"]),
    ("docker-archive_nvidia-container-toolkit_v1.17.8.txt", "28.2.0", ["io.containerd.runc.v2", "nvidia", "runc"]),
    (
        "ubuntu22.04_docker-24.0.7_a30-host_nvidia-runtime-not-default.txt",
        "24.0.7",
        ["io.containerd.runc.v2", "nvidia", "runc"],
    ),
]


@pytest.mark.parametrize(("_case", "version", "runtimes"), DOCKER, ids=[c[0] for c in DOCKER])
def test_docker_info(_case, version, runtimes, read_fixture):
    info = daemons.parse_docker_info(read_fixture(f"shared:docker-info/{_case}"))
    assert (info.server_version, info.runtimes, info.default_runtime, info.answering) == (
        version,
        runtimes,
        "runc",
        True,
    )
    assert not info.desktop


def test_docker_daemon_down():
    info = daemons.parse_docker_info(
        "Client:\n Version: 28.2.2\n\nServer:\nCannot connect to the Docker daemon at "
        "unix:///var/run/docker.sock. Is the docker daemon running?\n"
    )
    assert not info.answering and info.error.startswith("Cannot connect to the Docker daemon")


def test_time_sources(read_fixture):
    synced = daemons.parse_chronyc_tracking(read_fixture("shared:chrony/ubuntu-18.04_chronyc-tracking_synced.txt"))
    assert (synced.synchronized, synced.stratum, synced.offset_seconds) == (True, 2, -0.00066984)
    focal = daemons.parse_chronyc_tracking(read_fixture("shared:chrony/ubuntu-20.04_chronyc-tracking_synced.txt"))
    assert (focal.synchronized, focal.stratum, focal.offset_seconds) == (True, 3, 0.001983523)
    status = daemons.parse_timedatectl(read_fixture("shared:timedatectl/ubuntu-18.04_timedatectl-status.txt"))
    assert (status.synchronized, status.rtc_local) == (True, False)
    local_rtc = daemons.parse_timedatectl(
        read_fixture("shared:timedatectl/generic_timedatectl-status_rtc-local-warning.txt")
    )
    assert (local_rtc.synchronized, local_rtc.ntp_service, local_rtc.rtc_local) == (True, "active", True)
    show = daemons.parse_timedatectl(read_fixture("own:timedatectl/show_synchronized.txt"))
    assert (show.synchronized, show.time_zone) == (True, "Etc/UTC")


def test_ss_listeners(read_fixture):
    bionic = system.parse_ss_listeners(read_fixture("shared:ss/ubuntu-18.04_sudo-ss-tulpen.txt"))
    tcp = [(s.port, s.process, s.pid) for s in bionic if s.protocol == "tcp"]
    assert len(tcp) == 58 and tcp[0] == (9187, "prometheus-post", 1671)
    centos = system.parse_ss_listeners(read_fixture("shared:ss/centos-7.7_sudo-ss-a.txt"))
    assert [(s.protocol, s.address, s.port) for s in centos if s.protocol == "tcp"] == [
        ("tcp", "127.0.0.1", 25),
        ("tcp", "*", 22),
        ("tcp", "::1", 25),
        ("tcp", "::", 22),
    ]


def test_ss_hostile_process_names_cannot_move_a_field(read_fixture):
    # given: a real `ss -Hltnp` whose listeners named themselves `x",pid=1,fd=3))`, with a tab and a line break,
    # with a quote, and `w",pid=1,fd=3),` in a process that forked (two users of one socket)
    text = read_fixture("own:ss/debian-12_iproute2-6.1_ss-Hltnp_hostile-names.txt")
    # when
    listeners = {s.port: (s.process, s.pid) for s in system.parse_ss_listeners(text)}
    # then: every pid is the kernel's, the name is the name as ss printed it, and no line is lost or invented
    assert listeners == {
        40001: ("gpustack", 16563),
        10153: ('w",pid=1,fd=3', 16562),
        10152: ('q\\"', 16561),
        10151: ('a b\tc\nd"e', 16560),
        10150: ('x",pid=1,fd=3', 16559),
    }


@pytest.mark.parametrize(
    "name",
    ['x",pid=1,fd=3))', 'x",pid=1,fd=3),("y', "a\nLISTEN 0 5 0.0.0.0:22 0.0.0.0:*", '"))', ",pid=2,fd=3)) uid:0", ""],
)
def test_ss_names_never_choose_the_pid(name):
    # given: a process named `name` on 10150 (as an ss that does not cut names at `)` would print it), fields after
    line = f'tcp LISTEN 0 5 0.0.0.0:10150 0.0.0.0:* users:(("{name}",pid=4242,fd=6)) uid:0 ino:1 sk:2 <->\n'
    # when
    listeners = system.parse_ss_listeners(line + "LISTEN 0 5 0.0.0.0:40001 0.0.0.0:*\n")
    # then: one listener per real line, the pid is the last one ss printed, the name never longer than printed
    assert [(s.port, s.pid) for s in listeners] == [(10150, 4242), (40001, None)]
    assert listeners[0].process in name


def test_os_release():
    release = system.parse_os_release(
        'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
        'VERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
    )
    assert (release.id, release.version_id, release.id_like, release.family) == (
        "rocky",
        "9.3",
        ["rhel", "centos", "fedora"],
        "dnf",
    )


PARSERS = [
    nvidia.parse_nvidia_smi_table,
    nvidia.parse_nvidia_smi_query,
    nvidia.parse_nvidia_smi_xml,
    nvidia.parse_nvidia_smi_list,
    amd.parse_amd_smi_static,
    amd.parse_rocm_smi_json,
    ascend.parse_npu_smi_info,
    others.parse_hy_smi,
    others.parse_ixsmi,
    others.parse_mx_smi,
    others.parse_mthreads_gmi,
    others.parse_cnmon,
    ppu.parse_ppu_smi_list,
    ppu.parse_ppu_smi_query,
    network.parse_ip_addresses,
    network.parse_route_source,
    network.parse_systemd_environment,
    network.parse_environment_file,
    network.parse_daemon_json_proxies,
    host.parse_df,
    host.parse_docker_ps,
    host.parse_nvidia_runtime_mode,
    daemons.parse_docker_info,
    daemons.parse_chronyc_tracking,
    daemons.parse_timedatectl,
    system.parse_ss_listeners,
    system.parse_os_release,
    system.parse_pci_devices,
]


def tool_outputs() -> list[str]:
    """Every recorded tool output in tests/fixtures/, as `tool/file` (the seed page is a spec, not an output)."""
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*") if p.parent.name != "seed")


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_truncated_and_garbage_input_never_crash(parser):
    # given: every recorded output cut in half, plus binary garbage and a huge line
    inputs = [(FIXTURES / name).read_text(errors="replace") for name in tool_outputs()]
    inputs = [text[: len(text) // 2] for text in inputs] + ["\x00\xff garbage |||| +--+", "x" * 2_000_000, ""]
    returns = typing.get_type_hints(parser)["return"]
    declared = typing.get_origin(returns) or returns  # list[Listener] -> list
    # when / then: each parser returns the type it declares, whatever it is given
    for text in inputs:
        result = parser(text)
        assert isinstance(result, declared), f"{parser.__name__} returned {type(result).__name__}"


def test_own_gap_fixtures(read_fixture):
    assert nvidia.parse_nvidia_ctk_version(read_fixture("own:nvidia-ctk/version_1.17.8.txt")) == "1.17.8"
    broken = ascend.parse_npu_smi_info(read_fixture("own:npu-smi/not-installed-driver.txt"))
    assert broken.devices == [] and broken.driver_version == ""


def test_every_fixture_has_provenance():
    provenance = (FIXTURES / "PROVENANCE.md").read_text()
    files = [str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    # then: each file is named (in backticks) by an entry saying where it came from
    assert len(files) > 70 and [name for name in files if f"`{name}`" not in provenance] == []


def test_every_fixture_is_parsed_by_a_test(request):
    """Runs after every other test (tests/unit/conftest.py orders it last) and checks what they actually read."""
    # given: every test of this module that reads fixtures was selected in this session
    module = request.node.nodeid.split("::")[0]
    readers = {
        name
        for name, fn in globals().items()
        if name.startswith("test_") and "read_fixture" in signature(fn).parameters
    }
    selected = {item.originalname for item in request.session.items if item.nodeid.startswith(f"{module}::")}
    if not readers <= selected or any(nodeid.startswith(f"{module}::") for nodeid in DESELECTED):
        pytest.skip(f"fixture coverage is measured over the whole of {module}; run all of it")
    # when: the files those tests read through `read_fixture`
    read = {name for name, nodeids in FIXTURES_READ.items() if any(n.startswith(f"{module}::") for n in nodeids)}
    # then: every recorded output was parsed by at least one of them
    assert [name for name in tool_outputs() if name not in read] == []


@pytest.mark.parametrize(
    "text",
    [
        "Linux 5.15.0-105-generic aarch64\n",  # `uname -s -r -m`, probe version 4 on
        "Linux\naarch64\n5.15.0-105-generic\n",  # `uname -s; uname -m; uname -r`, earlier probes
    ],
)
def test_uname_in_either_probe_layout(text):
    assert system.parse_uname(text) == {"kernel": "Linux", "machine": "aarch64", "release": "5.15.0-105-generic"}


def test_a_clock_without_nanoseconds_still_reads():
    from checks.node_facts import build_facts
    from checks.probe import Section

    for printed, expected in [("1700000000.123456789", 1700000000.123456789), ("1700000000.N", 1700000000.0)]:
        assert build_facts({"clock": Section("clock", printed, 0)}).clock == pytest.approx(expected)


def test_a_login_name_cannot_pass_for_another_uid():
    from checks.node_facts import build_facts
    from checks.probe import Section

    meta = "probe_version=4\nuid=1000\nuser=mallory\nuid=0\n"  # LOGNAME="mallory<newline>uid=0"
    facts = build_facts({"meta": Section("meta", meta, 0)})
    assert (facts.login_uid, facts.login_user) == (1000, "mallory")
