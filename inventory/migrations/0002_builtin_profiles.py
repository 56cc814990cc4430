"""Load the two built-in requirement profiles.

`gpustack-2.0` is GPUStack's installation requirements page as the product was specified from it, transcribed row
by row (tests/unit/test_profile_transcription.py parses that page and compares); `gpustack-2.2` is current upstream
as REQUIREMENTS.md describes it. The data lives here, not in code, so an operator can tailor a copy in the admin and
later releases add profiles with new migrations. Reverse is a no-op: operators may have pointed clusters at them.
"""

from django.db import migrations

ARCHITECTURES = ["x86_64", "amd64", "aarch64", "arm64"]

OS_TABLE = [
    # (os-release ID, name on the page, minimum VERSION_ID, note)
    ("ubuntu", "Ubuntu", "20.04", ""),
    ("debian", "Debian", "11", ""),
    ("rhel", "RHEL", "8", ""),
    ("rocky", "Rocky", "8", ""),
    ("fedora", "Fedora", "36", ""),
    ("opensuse-leap", "OpenSUSE", "15.3", "Leap"),
    ("openEuler", "OpenEuler", "22.03", ""),
]

VENDORS_2_0 = [
    # vendor, experimental, driver, driver url, toolkit, toolkit url, docker runtime
    ("nvidia", False, "NVIDIA GPU Driver", "https://www.nvidia.com/en-us/drivers/",
     "NVIDIA Container Toolkit", "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit", "nvidia"),
    ("amd", False, "AMD GPU Driver", "https://rocm.docs.amd.com/projects/install-on-linux/en/latest/",
     "AMD Container Runtime",
     "https://instinct.docs.amd.com/projects/container-toolkit/en/latest/container-runtime/overview.html", "amd"),
    ("ascend", False, "Ascend NPU Driver", "https://www.hiascend.com/hardware/firmware-drivers/community",
     "Ascend Docker Runtime",
     "https://www.hiascend.com/document/detail/zh/mindcluster/72rc1/clustersched/dlug/dlug_installation_017.html",
     "ascend"),
    ("hygon", True, "Hygon DCU Driver", "https://developer.sourcefind.cn/tool/",
     "Hygon DTK Toolkit", "https://developer.sourcefind.cn/tool/", ""),
    ("mthreads", True, "MThreads GPU Driver", "https://docs.mthreads.com/",
     "MThreads Container Toolkit", "https://developer.mthreads.com/sdk/download/CloudNative", "mthreads"),
    ("iluvatar", True, "Iluvatar GPU Driver", "https://support.iluvatar.com/#/login",
     "Iluvatar Container Toolkit", "https://github.com/Deep-Spark/ix-container-toolkit", "iluvatar"),
    ("metax", True, "MetaX GPU Driver", "https://developer.metax-tech.com/softnova/download?package_kind=Driver",
     "MetaX MACA SDK", "https://developer.metax-tech.com/softnova/download?package_kind=SDK", ""),
    ("cambricon", True, "Cambricon MLU Driver", "", "Cambricon NeuWare Toolkit", "", "cambricon"),
]

# role, first, last, purpose, condition, worker_to_worker
PORTS_2_0 = [
    ("server", 80, 80, "Default port for GPUStack UI and API endpoints", "always", False),
    ("server", 443, 443, "Default port for GPUStack UI and API endpoints (TLS enabled)", "tls", False),
    ("server", 10161, 10161, "Default port for GPUStack server metrics", "always", False),
    ("worker", 10150, 10150, "Default port for GPUStack worker", "always", False),
    ("worker", 10151, 10151, "Default port for exposing metrics", "always", False),
    ("worker", 40000, 40063, "Port range for inference services", "always", False),
    ("worker", 40064, 40095, "Port range for distributed serving", "always", True),
    ("worker", 6379, 6379, "Default port for Ray (GCS server)", "distributed_vllm", True),
    ("worker", 10001, 10001, "Default port for Ray Client Server", "distributed_vllm", True),
    ("worker", 8265, 8265, "Default port for Ray dashboard", "distributed_vllm", True),
    ("worker", 52365, 52365, "Default port for Ray dashboard agent HTTP listen", "distributed_vllm", True),
    ("worker", 10002, 19999, "Port range for Ray worker processes", "distributed_vllm", True),
]

PORTS_2_2 = [
    ("server", 80, 80, "Default port for GPUStack UI and API endpoints", "always", False),
    ("server", 443, 443, "Default port for GPUStack UI and API endpoints (TLS enabled)", "tls", False),
    ("server", 10161, 10161, "Default port for GPUStack server metrics", "always", False),
    ("server", 30080, 30080, "GPUStack internal API", "always", False),
    ("server", 5432, 5432, "Embedded PostgreSQL", "always", False),
    ("worker", 10150, 10150, "Default port for GPUStack worker", "always", False),
    ("worker", 10151, 10151, "Default port for exposing metrics", "always", False),
    ("worker", 40000, 40063, "Port range for inference services", "always", False),
    ("worker", 41000, 41999, "Port range for Ray (distributed vLLM)", "distributed_vllm", True),
]

AMD64_ONLY_2_2 = {"hygon", "iluvatar", "metax", "mthreads", "cambricon"}
MIN_VERSIONS_2_2 = {"nvidia": ("12.8", "CUDA"), "amd": ("7.0", "ROCm")}


def _load_profile(apps, *, key, name, description, source, is_default, check_reserved_ports, ports, v22):
    RequirementProfile = apps.get_model("inventory", "RequirementProfile")
    OsRule = apps.get_model("inventory", "OsRule")
    AcceleratorRule = apps.get_model("inventory", "AcceleratorRule")
    PortRule = apps.get_model("inventory", "PortRule")
    if RequirementProfile.objects.filter(key=key).exists():
        return
    profile = RequirementProfile.objects.create(
        key=key, name=name, description=description, source=source, is_default=is_default,
        architectures=ARCHITECTURES, check_reserved_ports=check_reserved_ports,
    )
    OsRule.objects.bulk_create(
        OsRule(profile=profile, distro_id=distro, name=label, min_version=minimum, note=note)
        for distro, label, minimum, note in OS_TABLE
    )
    AcceleratorRule.objects.bulk_create(
        AcceleratorRule(
            profile=profile, vendor=vendor, experimental=experimental, driver_name=driver, driver_url=driver_url,
            toolkit_name=toolkit, toolkit_url=toolkit_url, docker_runtime=runtime,
            min_version=MIN_VERSIONS_2_2.get(vendor, ("", ""))[0] if v22 else "",
            min_version_of=MIN_VERSIONS_2_2.get(vendor, ("", ""))[1] if v22 else "",
            amd64_only=v22 and vendor in AMD64_ONLY_2_2,
        )
        for vendor, experimental, driver, driver_url, toolkit, toolkit_url, runtime in VENDORS_2_0
    )
    PortRule.objects.bulk_create(
        PortRule(profile=profile, role=role, first_port=first, last_port=last, protocol="tcp", purpose=purpose,
                 condition=condition, worker_to_worker=w2w)
        for role, first, last, purpose, condition, w2w in ports
    )


def load_builtin_profiles(apps, schema_editor):
    _load_profile(
        apps, key="gpustack-2.0", name="GPUStack 2.0 installation requirements",
        description="Exactly GPUStack's installation requirements page: tested OS table, AMD64/ARM64, NTP, eight "
        "accelerator vendors (driver + toolkit), server and worker ports, Ray ports for distributed vLLM.",
        source="GPUStack docs: Installation Requirements", is_default=True, check_reserved_ports=False,
        ports=PORTS_2_0, v22=False,
    )
    _load_profile(
        apps, key="gpustack-2.2", name="GPUStack 2.2 (current upstream)",
        description="GPUStack v2.2: server also 30080 and 5432; worker Ray range 41000-41999; NVIDIA CUDA >= 12.8, "
        "AMD ROCm >= 7.0; Hygon, Iluvatar, MetaX, MThreads and Cambricon AMD64-only; reserved ephemeral ports "
        "(GPUStack issue 5181).",
        source="GPUStack v2.2 docs and code", is_default=False, check_reserved_ports=True,
        ports=PORTS_2_2, v22=True,
    )


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [migrations.RunPython(load_builtin_profiles, migrations.RunPython.noop)]
