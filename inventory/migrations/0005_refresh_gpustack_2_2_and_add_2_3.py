"""Refresh the built-in `gpustack-2.2` profile to GPUStack v2.2.3, add `gpustack-2.3` (v2.3.0) with the same rules.

Why: a cluster judged against the old `gpustack-2.2` showed "ready" where GPUStack's own `prerun` then refused to
start. Its port rules came from the docs table; GPUStack's code (`gpustack/cmd/prerun.py` `ports_for_services`,
`gpustack/config/config.py` defaults and `Config.detect_gateway_mode`, identical in v2.2.3 and v2.3.0) binds and
checks more, and only some of them in some configurations. What changed in `gpustack-2.2`, in place:

- Server ports: 30079 (proxy port, every server) is new; 30080 only unless the gateway is disabled; 5432 only
  without an external database; 19090 (Prometheus) and 13000 (Grafana) while built-in observability is on; the
  embedded gateway's ten ports (127.0.0.1 18443, 15000, 9876, 15010, 15012, 8888, 15051; 0.0.0.0 15021, 15090,
  15020) on the server only, because `detect_gateway_mode` turns the gateway off on every pure worker.
- Which ports network paths prove (`reach`): the server reaches a worker's 10150 and 10151 (the built-in
  Prometheus scrapes worker metrics directly outside tunnel mode), its inference range 40000-40063 only in direct
  proxy mode; workers reach the server's 80/443; Ray 41000-41999 is worker to worker only; the rest is loopback or
  used on the node itself.
- OS table advisory (the distro table left the docs in v2.0.1); Docker Desktop fails on a worker
  (`docs/installation/installation.md`).
- NVIDIA: besides CUDA >= 12.8, driver >= 570 and compute capability (below 6.0 fails, below 7.0 warns).
- T-Head PPU (`thead`, experimental upstream) joins the eight vendors; `gpustack-2.0` keeps exactly the seed's eight.
- The profile names the release and commit it follows (v2.2.3, 1cfcbbff); `gpustack-2.0` names the commit of the
  requirements page it transcribes (ef65b713, contained in v2.0.0).

The port rules of `gpustack-2.2` are replaced whole (a copy an operator made in the admin is not touched); its OS
rules stay; NVIDIA's rule is updated and `thead` added. Reverse is a no-op: clusters may point at the profiles.
"""

from django.db import migrations

RELEASE_2_0 = ("v2.0.0", "ef65b71398a3c7885bd7f2fece45739e9b659272")
RELEASE_2_2 = ("v2.2.3", "1cfcbbff02aacdb51f0a390378dd7bcddd9bf365")
# v2.3.0 from PyPI (gpustack==2.3.0): its gpustack/__init__.py records `__git_commit__ = '63a03ba'`.
RELEASE_2_3 = ("v2.3.0", "63a03ba")

GATEWAY = "Embedded gateway (higress)"
# role, first, last, purpose, condition, worker_to_worker, reach
PORTS = [
    ("server", 80, 80, "GPUStack UI and API endpoints (the gateway's HTTP port)", "always", False, "peers"),
    ("server", 443, 443, "GPUStack UI and API endpoints (TLS enabled)", "tls", False, "peers"),
    ("server", 10161, 10161, "Server metrics", "always", False, "none"),
    ("server", 30079, 30079, "Proxy port (127.0.0.1 with the embedded gateway; prerun checks it)", "always", False,
     "none"),
    ("server", 30080, 30080, "GPUStack internal API (127.0.0.1 with the embedded gateway)", "gateway_enabled", False,
     "none"),
    ("server", 5432, 5432, "Embedded PostgreSQL", "builtin_database", False, "none"),
    ("server", 19090, 19090, "Built-in Prometheus", "observability", False, "none"),
    ("server", 13000, 13000, "Built-in Grafana", "observability", False, "none"),
    ("server", 18443, 18443, f"{GATEWAY}: file-based APIServer, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 15000, 15000, f"{GATEWAY}: Envoy management, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 9876, 9876, f"{GATEWAY}: Pilot-discovery introspection, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 15010, 15010, f"{GATEWAY}: Pilot-discovery XDS, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 15012, 15012, f"{GATEWAY}: Pilot-discovery secure XDS, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 8888, 8888, f"{GATEWAY}: Controller XDS over HTTP, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 15051, 15051, f"{GATEWAY}: Controller XDS over gRPC, 127.0.0.1", "gateway_embedded", False, "none"),
    ("server", 15021, 15021, f"{GATEWAY}: Envoy health check, 0.0.0.0", "gateway_embedded", False, "none"),
    ("server", 15090, 15090, f"{GATEWAY}: Envoy metrics, 0.0.0.0", "gateway_embedded", False, "none"),
    ("server", 15020, 15020, f"{GATEWAY}: Pilot-agent metrics, 0.0.0.0", "gateway_embedded", False, "none"),
    ("worker", 10150, 10150, "GPUStack worker", "always", False, "peers"),
    ("worker", 10151, 10151, "Worker metrics (scraped by the server outside tunnel mode)", "always", False, "peers"),
    ("worker", 40000, 40063, "Inference services (reached by the server in direct proxy mode)", "always", False,
     "direct_mode"),
    ("worker", 41000, 41999, "Ray (distributed vLLM), worker to worker", "distributed_vllm", True, "none"),
]

NVIDIA_2_2 = {
    "min_version": "12.8",
    "min_version_of": "CUDA",
    "min_driver_version": "570",
    "min_compute_capability": "6.0",
    "warn_compute_capability": "7.0",
}
AMD64_ONLY = ("hygon", "iluvatar", "metax", "mthreads", "cambricon")
THEAD_DOCS = "https://docs.gpustack.ai/latest/installation/requirements/#t-head-ppu"
THEAD = {
    "experimental": True,
    "driver_name": "T-Head PPU Driver",
    "driver_url": THEAD_DOCS,
    "toolkit_name": "T-Head PPU SDK",
    "toolkit_url": THEAD_DOCS,
    "docker_runtime": "",
}

DESCRIPTION = (
    "GPUStack {release} as its code checks it (prerun's ports per cluster option: proxy port 30079, internal API "
    "30080 unless the gateway is disabled, embedded PostgreSQL, built-in observability, the embedded gateway's ports "
    "on the server; Ray 41000-41999); OS table advisory; Docker Desktop fails on a worker; NVIDIA CUDA >= 12.8, "
    "driver >= 570, compute capability >= 7.0 (6.0 fails); AMD ROCm >= 7.0; nine vendors with T-Head PPU."
)


def _refresh(apps, *, key, name, release, source, base=None):
    RequirementProfile = apps.get_model("inventory", "RequirementProfile")
    OsRule = apps.get_model("inventory", "OsRule")
    AcceleratorRule = apps.get_model("inventory", "AcceleratorRule")
    PortRule = apps.get_model("inventory", "PortRule")
    profile = RequirementProfile.objects.filter(key=key).first()
    if profile is None and base is None:
        return None  # an operator deleted the built-in profiles this one would be made from: nothing to refresh
    if profile is None:
        profile = RequirementProfile.objects.create(key=key, name=name, architectures=list(base.architectures))
        OsRule.objects.bulk_create(
            OsRule(profile=profile, distro_id=r.distro_id, name=r.name, min_version=r.min_version, note=r.note)
            for r in base.os_rules.all()
        )
        AcceleratorRule.objects.bulk_create(
            AcceleratorRule(
                profile=profile,
                **{f: getattr(r, f) for f in (
                    "vendor", "experimental", "driver_name", "driver_url", "toolkit_name", "toolkit_url",
                    "docker_runtime", "min_version", "min_version_of", "min_driver_version",
                    "min_compute_capability", "warn_compute_capability", "amd64_only",
                )},
            )
            for r in base.accelerator_rules.all()
        )
    profile.name = name
    profile.description = DESCRIPTION.format(release=release[0])
    profile.source = source
    profile.gpustack_release, profile.gpustack_commit = release
    profile.check_reserved_ports = True
    profile.os_table_advisory = True
    profile.docker_desktop_fails_on_worker = True
    profile.save()
    profile.port_rules.all().delete()
    PortRule.objects.bulk_create(
        PortRule(profile=profile, role=role, first_port=first, last_port=last, protocol="tcp", purpose=purpose,
                 condition=condition, worker_to_worker=w2w, reach=reach)
        for role, first, last, purpose, condition, w2w, reach in PORTS
    )
    profile.accelerator_rules.filter(vendor="nvidia").update(**NVIDIA_2_2)
    profile.accelerator_rules.filter(vendor="amd").update(min_version="7.0", min_version_of="ROCm")
    profile.accelerator_rules.filter(vendor__in=AMD64_ONLY).update(amd64_only=True)
    if not profile.accelerator_rules.filter(vendor="thead").exists():
        AcceleratorRule.objects.create(profile=profile, vendor="thead", **THEAD)
    return profile


def refresh_profiles(apps, schema_editor):
    RequirementProfile = apps.get_model("inventory", "RequirementProfile")
    RequirementProfile.objects.filter(key="gpustack-2.0").update(
        gpustack_release=RELEASE_2_0[0], gpustack_commit=RELEASE_2_0[1]
    )
    v22 = _refresh(
        apps, key="gpustack-2.2", name="GPUStack 2.2 (v2.2.3)", release=RELEASE_2_2,
        source="gpustack/gpustack v2.2.3 (1cfcbbff, 2026-07-28): gpustack/cmd/prerun.py ports_for_services, "
        "gpustack/config/config.py (port defaults, detect_gateway_mode), docs/installation/requirements.md and "
        "installation.md",
        base=RequirementProfile.objects.filter(key="gpustack-2.0").first(),
    )
    _refresh(
        apps, key="gpustack-2.3", name="GPUStack 2.3 (v2.3.0)", release=RELEASE_2_3,
        source="gpustack 2.3.0 on PyPI (gpustack/__init__.py __git_commit__ 63a03ba): gpustack/cmd/prerun.py "
        "ports_for_services and gpustack/config/config.py as in v2.2.3; its gpustack-runner builds no image older "
        "than CUDA 12.8 or ROCm 7.0",
        base=v22,
    )


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_profile_release_and_cluster_options")]

    operations = [migrations.RunPython(refresh_profiles, migrations.RunPython.noop)]
