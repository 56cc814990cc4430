"""`accelerator.present` and, per vendor found, `accelerator.<vendor>.driver|toolkit|version`."""

from collections import Counter

from ..node_facts import NodeFacts, VendorFacts
from ..remediation import Remedy, fix_accelerator_present, fix_driver, fix_toolkit, fix_version
from ..spec import AcceleratorRuleSpec, NodeContext, ProfileSpec
from ..vendors import VENDORS
from ..versions import version_at_least
from .registry import FAIL, PASS, SKIP, WARN
from .result import RuleResult, register


def _pci_evidence(facts: NodeFacts) -> str:
    lines = [f"{d.address} vendor={d.vendor_id} class={d.class_code}" for d in facts.accelerator_pci()]
    return "accelerator-class PCI devices:\n" + ("\n".join(lines) if lines else "(none)")


@register("accelerator.present")
def evaluate_present(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    if "worker" not in context.roles:
        return [RuleResult("accelerator.present", SKIP, "server node: accelerators are not required")]
    usable = {k: v for k, v in facts.vendors.items() if supported(k, profile)}
    if usable:
        counts = ", ".join(
            f"{len(v.pci_devices) or len(v.report.devices)} {VENDORS[k].label}" for k, v in usable.items()
        )
        return [RuleResult("accelerator.present", PASS, f"accelerators found: {counts}", _pci_evidence(facts))]
    unsupported = [k for k in facts.vendors if k not in usable]
    if unsupported:
        names = ", ".join(VENDORS[k].label for k in unsupported)
        return [
            RuleResult(
                "accelerator.present",
                WARN,
                f"only {names} accelerators, which profile {profile.key} does not support (CPU-only)",
                _pci_evidence(facts),
                fix_accelerator_present(role=context.role, unsupported=names),
            )
        ]
    # A server that also runs a worker is still a server to the operator: name the node by its inventory role.
    summary = f"no accelerator found (CPU-only {'server' if context.role == 'server' else 'worker'})"
    if not facts.pci_read:
        summary += "; the PCI bus could not be read"
    remedy = fix_accelerator_present(role=context.role)
    return [RuleResult("accelerator.present", WARN, summary, _pci_evidence(facts), remedy)]


def _describe(vendor: VendorFacts) -> str:
    models = Counter(d.model or "device" for d in vendor.report.devices)
    return ", ".join(f"{n} x {m}" for m, n in models.items())


def _driver(facts: NodeFacts, vendor: VendorFacts, rule: AcceleratorRuleSpec | None) -> RuleResult:
    spec = VENDORS[vendor.vendor]
    check_id = f"accelerator.{vendor.vendor}.driver"
    driver_name = rule.driver_name if rule else f"{spec.label} driver"
    driver_url = rule.driver_url if rule else ""
    on_bus = len(vendor.pci_devices)

    def fix(detail: str) -> Remedy:
        return fix_driver(driver_name=driver_name, driver_url=driver_url, tool=spec.tool, detail=detail)

    if not vendor.tool_path:
        return RuleResult(
            check_id,
            FAIL,
            f"{on_bus} {spec.label} device(s) on the PCI bus but {spec.tool} is not installed: the driver is missing",
            _pci_evidence(facts),
            fix(""),
        )
    evidence = f"$ {spec.tool}  (exit {vendor.tool_rc})\n{vendor.tool_output}".strip()
    if vendor.tool_rc is None:
        return RuleResult(
            check_id,
            FAIL,
            f"{spec.tool} did not finish (timed out or hung)",
            evidence,
            fix("A driver tool that hangs usually means a wedged driver: check `dmesg`."),
        )
    if vendor.tool_rc != 0 or not vendor.report.devices:
        first_line = next((line.strip() for line in vendor.tool_output.splitlines() if line.strip()), "no output")
        if not on_bus:
            return RuleResult(
                check_id,
                WARN,
                f"{spec.tool} is installed but lists no device and no {spec.label} "
                f"device is on the PCI bus: {first_line}",
                evidence,
                fix(""),
            )
        return RuleResult(
            check_id,
            FAIL,
            f"{spec.tool} failed (exit {vendor.tool_rc}): {first_line}",
            evidence,
            fix("Reinstalling the driver for the running kernel usually fixes this."),
        )
    listed = len(vendor.report.devices)
    version = vendor.report.driver_version or "unknown version"
    extra = ""
    if vendor.report.runtime_version:
        extra = f", {vendor.report.runtime_name} {vendor.report.runtime_version}"
    summary = f"{_describe(vendor)}, driver {version}{extra}"
    if on_bus and listed < on_bus:
        return RuleResult(
            check_id,
            WARN,
            f"{spec.tool} lists {listed} of the {on_bus} {spec.label} devices on the PCI bus: {summary}",
            evidence,
            fix("A device the driver cannot see is usually faulty or held by another driver (vfio)."),
        )
    return RuleResult(check_id, PASS, summary, evidence)


def _toolkit(facts: NodeFacts, vendor: VendorFacts, rule: AcceleratorRuleSpec | None) -> RuleResult:
    spec = VENDORS[vendor.vendor]
    check_id = f"accelerator.{vendor.vendor}.toolkit"
    toolkit_name = rule.toolkit_name if rule else f"{spec.label} toolkit"
    runtime = rule.docker_runtime if rule else ""
    markers = spec.toolkit_tools + spec.toolkit_paths
    found = vendor.toolkit_found
    fix = fix_toolkit(
        facts.os,
        vendor=vendor.vendor,
        toolkit_name=toolkit_name,
        toolkit_url=(rule.toolkit_url if rule else "") or spec.docs,
        runtime=runtime,
        installed=bool(found) or not markers,
        machine=facts.machine,
        cdi_dir=spec.cdi_dir,
    )
    runtimes = facts.docker.runtimes if facts.docker and facts.docker.answering else None
    evidence_lines = [
        f"looked for: {', '.join(markers) or '(no binary or path; runtime only)'}",
        f"found: {', '.join(found) or 'nothing'}",
    ]
    if vendor.toolkit_version:
        evidence_lines.append(f"version: {vendor.toolkit_version}")
    if runtime:
        evidence_lines.append(
            f"docker runtimes: {' '.join(runtimes) if runtimes is not None else '(docker not answering)'}"
        )
    if spec.cdi_dir:
        where = spec.cdi_dir if vendor.cdi_dir_present else f"{spec.cdi_dir} (missing)"
        evidence_lines.append(f"CDI specs in {where}: {', '.join(vendor.cdi_specs) or 'none'}")
    evidence = "\n".join(evidence_lines)
    if markers and not found:
        return RuleResult(check_id, FAIL, f"{toolkit_name} is not installed", evidence, fix)
    if spec.cdi_dir and not vendor.cdi_dir_present:
        return RuleResult(
            check_id,
            FAIL,
            f"{toolkit_name} installed, but {spec.cdi_dir} does not exist: GPUStack's runtime writes the "
            f"{spec.label} CDI spec there and hands the devices to containers through it",
            evidence,
            fix,
        )
    if not runtime:
        cdi = ""
        if spec.cdi_dir:
            cdi = (
                f", {len(vendor.cdi_specs)} CDI spec(s) in {spec.cdi_dir}"
                if vendor.cdi_specs
                else f", {spec.cdi_dir} ready (GPUStack writes its CDI spec there at deployment)"
            )
        return RuleResult(check_id, PASS, f"{toolkit_name} installed ({', '.join(found)}){cdi}", evidence)
    if runtimes is None:
        return RuleResult(
            check_id,
            WARN,
            f"{toolkit_name} installed, but whether Docker has the `{runtime}` runtime "
            "cannot be seen: Docker is not answering",
            evidence,
            fix,
        )
    if runtime not in runtimes:
        what = f"{toolkit_name} installed" if found else f"no {toolkit_name} found"
        return RuleResult(check_id, FAIL, f"{what}, but Docker has no `{runtime}` runtime", evidence, fix)
    version = f" {vendor.toolkit_version}" if vendor.toolkit_version else ""
    return RuleResult(
        check_id, PASS, f"{toolkit_name}{version} installed, Docker runtime `{runtime}` registered", evidence
    )


def _version(facts: NodeFacts, vendor: VendorFacts, rule: AcceleratorRuleSpec) -> RuleResult:
    """The profile's floors: the runtime the driver supports (CUDA, ROCm), the driver itself, and each GPU's compute
    capability (below `min_compute_capability` fails, below `warn_compute_capability` warns). The worst finding
    decides; the summary names each one with the number it missed."""
    check_id = f"accelerator.{vendor.vendor}.version"
    label = VENDORS[vendor.vendor].label
    report = vendor.report
    findings: list[tuple[str, str]] = []  # (status, sentence)
    passed: list[str] = []
    evidence: list[str] = []
    fix = ""
    if rule.min_version:
        current = report.runtime_version if vendor.vendor != "amd" else (vendor.rocm_version or "")
        what = rule.min_version_of or "the runtime"
        evidence.append(f"{what} reported: {current or '(none)'}; required: >= {rule.min_version}")
        ok = version_at_least(current, rule.min_version)
        if not ok:
            fix = fix_version(
                vendor_label=label,
                what=what,
                minimum=rule.min_version,
                current=current or "an unknown version",
                driver_url=rule.driver_url,
            ).text
        if ok is None:
            findings.append((WARN, f"{what} version unknown: the driver tool did not report it"))
        elif ok:
            passed.append(f"{what} {current} (>= {rule.min_version})")
        else:
            findings.append((FAIL, f"{what} {current} is below the required {rule.min_version}"))
    if rule.min_driver_version:
        driver = report.driver_version
        evidence.append(f"driver reported: {driver or '(none)'}; required: >= {rule.min_driver_version}")
        ok = version_at_least(driver, rule.min_driver_version)
        if ok is False:
            findings.append((FAIL, f"driver {driver} is below the required {rule.min_driver_version}"))
            fix = (
                fix
                or fix_version(
                    vendor_label=label,
                    what="the driver",
                    minimum=rule.min_driver_version,
                    current=driver,
                    driver_url=rule.driver_url,
                ).text
            )
        elif ok:
            passed.append(f"driver {driver} (>= {rule.min_driver_version})")
    floor, advised = rule.min_compute_capability, rule.warn_compute_capability
    if floor or advised:
        for device in report.devices:
            gpu = f"GPU {device.index} {device.model}".strip()
            capability = device.compute_capability
            evidence.append(f"{gpu}: compute capability {capability or '(not reported)'}")
            if not capability:
                continue
            if floor and version_at_least(capability, floor) is False:
                findings.append((FAIL, f"{gpu} has compute capability {capability}, below GPUStack's floor {floor}"))
            elif advised and version_at_least(capability, advised) is False:
                findings.append(
                    (
                        WARN,
                        f"{gpu} has compute capability {capability}, below {advised} "
                        "(vLLM, the default backend, needs it; other backends may still run)",
                    )
                )
        capabilities = sorted({d.compute_capability for d in report.devices if d.compute_capability})
        if capabilities and not findings:
            passed.append(f"compute capability {', '.join(capabilities)}")
    text = "\n".join(evidence)
    if not findings:
        return RuleResult(check_id, PASS, "; ".join(passed) or "no version floor to check", text)
    status = FAIL if any(status == FAIL for status, _ in findings) else WARN
    ordered = [sentence for s, sentence in findings if s == FAIL] + [sentence for s, sentence in findings if s != FAIL]
    if not fix:
        fix = (
            f"This GPU is older than {advised or floor}: run another inference backend on it, "
            "or use a newer GPU for vLLM."
            if status == WARN
            else f"GPUStack needs compute capability {floor} or newer: use a newer GPU on this worker."
        )
    return RuleResult(check_id, status, "; ".join(ordered), text, fix)


def supported(vendor: str, profile: ProfileSpec) -> bool:
    """Whether the profile judges this vendor: every vendor, except one that needs its own rule and has none."""
    return not VENDORS[vendor].needs_rule or vendor in profile.accelerator_rules


@register("accelerator")
def evaluate_vendors(facts: NodeFacts, profile: ProfileSpec, context: NodeContext) -> list[RuleResult]:
    results = []
    for key, vendor in facts.vendors.items():
        rule = profile.accelerator_rules.get(key)
        if not supported(key, profile):
            label = VENDORS[key].label
            why = f"profile {profile.key} does not support {label} (GPUStack supports it from v2.2)"
            results.append(RuleResult(f"accelerator.{key}.driver", SKIP, why, _pci_evidence(facts)))
            results.append(RuleResult(f"accelerator.{key}.toolkit", SKIP, why))
            continue
        results.append(_driver(facts, vendor, rule))
        results.append(_toolkit(facts, vendor, rule))
        if rule and any(
            (rule.min_version, rule.min_driver_version, rule.min_compute_capability, rule.warn_compute_capability)
        ):
            results.append(_version(facts, vendor, rule))
    return results
