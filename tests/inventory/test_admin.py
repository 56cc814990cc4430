"""Every admin changelist, add and change page renders for a superuser; the import page and profile actions work."""

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from checks.choices import RunState
from checks.models import Audit, NodeAudit
from inventory.choices import InstallKind, Vendor
from inventory.models import Accelerator, Cluster, Credential, DriverInstall, HostKey, Node, RequirementProfile
from inventory.services import demo_load
from tests.factories import FailingNtpResultFactory, NodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated():
    demo_load()
    credential = Credential(name="ops", kind="password")
    credential.secret = "pw"
    credential.save()
    node = NodeFactory(credential=credential)
    HostKey.objects.create(node=node, key_type="ssh-ed25519", fingerprint="SHA256:abc", public_key="AAAA")
    Accelerator.objects.create(
        node=node, vendor=Vendor.NVIDIA, index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559
    )
    DriverInstall.objects.create(
        node=node, vendor=Vendor.NVIDIA, kind=InstallKind.DRIVER, name="nvidia", version="590.48.01"
    )
    audit = Audit.objects.create(cluster=node.cluster, profile=node.cluster.profile, profile_key="gpustack-2.0")
    node_audit = NodeAudit.objects.create(audit=audit, node=node, state=RunState.DONE, status="fail", raw_output="x")
    FailingNtpResultFactory(node_audit=node_audit)
    return node


def _registered():
    return [(model, model_admin) for model, model_admin in admin.site._registry.items()]


@pytest.mark.parametrize("model", [m for m, _ in _registered()], ids=lambda m: m._meta.label)
def test_every_admin_changelist_add_and_change_page_renders(admin_client, populated, model):
    # given
    opts = model._meta
    obj = model._default_manager.first()
    # when
    changelist = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    add = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    # then
    assert changelist.status_code == 200
    assert add.status_code in (200, 403)
    if obj is not None:
        change = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200


def test_inventory_models_all_registered():
    from django.apps import apps

    registered = {m for m, _ in _registered()}
    assert set(apps.get_app_config("inventory").get_models()) <= registered


def test_node_changelist_filters_and_search(admin_client, populated):
    url = reverse("admin:inventory_node_changelist")
    by_vendor = admin_client.get(url, {"accelerators__vendor": "nvidia"})
    by_search = admin_client.get(url, {"q": "this-machine"})
    assert by_vendor.context["cl"].result_count == 1
    assert [n.name for n in by_search.context["cl"].result_list] == ["this-machine"]


def test_profile_change_page_shows_rules_inline(admin_client):
    profile = RequirementProfile.objects.get(key="gpustack-2.0")
    body = admin_client.get(reverse("admin:inventory_requirementprofile_change", args=[profile.pk])).content.decode()
    assert "40064" in body and "opensuse-leap" in body and "NVIDIA Container Toolkit" in body


def test_duplicate_profile_action(admin_client):
    profile = RequirementProfile.objects.get(key="gpustack-2.2")
    response = admin_client.post(
        reverse("admin:inventory_requirementprofile_changelist"),
        {"action": "duplicate", "_selected_action": [profile.pk]},
        follow=True,
    )
    assert response.status_code == 200
    copy = RequirementProfile.objects.get(key="gpustack-2.2-copy")
    assert copy.port_rules.count() == profile.port_rules.count()
    assert "Copied gpustack-2.2 to gpustack-2.2-copy" in response.content.decode()


def test_import_page_uploads_inventory(admin_client):
    url = reverse("admin:inventory_cluster_import")
    assert admin_client.get(url).status_code == 200
    upload = SimpleUploadedFile(
        "rack7.ini", b"[server]\nh1 ansible_host=10.0.0.1\n[workers]\ng[1:3] ansible_ssh_private_key_file=/root/k\n"
    )
    response = admin_client.post(url, {"file": upload, "profile": "gpustack-2.2"}, follow=True)
    body = response.content.decode()
    assert response.status_code == 200 and "Cluster rack7 (created, profile gpustack-2.2)" in body
    assert "not read from an upload" in body
    assert Cluster.objects.get(name="rack7").nodes.count() == 4
    assert not Node.objects.filter(credential__isnull=False).exists()


def test_import_page_rejects_malformed_upload_with_line(admin_client):
    url = reverse("admin:inventory_cluster_import")
    upload = SimpleUploadedFile("bad.yml", b"workers:\n  hosts:\n    - gpu1\n")
    response = admin_client.post(url, {"file": upload})
    body = response.content.decode()
    assert response.status_code == 200
    assert "bad.yml:3: hosts of group &#x27;workers&#x27; must be a mapping" in body
    assert "nothing was imported" in body and not Cluster.objects.filter(name="bad").exists()


def test_import_page_refuses_binary_upload(admin_client):
    url = reverse("admin:inventory_cluster_import")
    response = admin_client.post(url, {"file": SimpleUploadedFile("x.ini", b"\xff\xfe\x00bin")})
    assert "not a UTF-8 text file" in response.content.decode() and Cluster.objects.count() == 0


def test_import_page_requires_permission(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:inventory_cluster_import")).status_code == 403


def test_remediation_script_download(admin_client, populated):
    node_audit = NodeAudit.objects.get(node=populated)
    response = admin_client.get(reverse("admin:checks_nodeaudit_remediation", args=[node_audit.pk]))
    body = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"] == "text/x-shellscript"
    assert body.startswith("#!/bin/sh\n") and "# [fail] time.ntp: no NTP" in body
    assert "\n  apt-get install -y chrony\n" in body and "\n  systemctl enable --now chrony\n" in body
    assert all(line.startswith("#") for line in body.splitlines() if "pfmark" in line)


def test_audit_now_action_starts_an_audit_and_refuses_a_second(
    admin_client, populated, django_capture_on_commit_callbacks
):
    url = reverse("admin:inventory_cluster_changelist")
    cluster = Cluster.objects.get(name="demo")
    Audit.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = admin_client.post(url, {"action": "audit_now", "_selected_action": [cluster.pk]}, follow=True)
    second = admin_client.post(url, {"action": "audit_now", "_selected_action": [cluster.pk]}, follow=True)
    audit = Audit.objects.get(cluster=cluster)
    assert f'Audit <a href="/admin/checks/audit/{audit.pk}/change/">{audit.pk}</a> of demo started.' in (
        first.content.decode()
    )
    assert len(callbacks) == 1 and audit.trigger == "admin" and audit.node_audits.count() == 3
    assert "is still queued" in second.content.decode() and Audit.objects.filter(cluster=cluster).count() == 1


def test_node_page_reads_labels_and_shows_facts_as_an_escaped_bounded_table(admin_client):
    # given: a node whose facts hold markup, nesting and more keys than the page shows
    from inventory.admin import FACT_ROWS

    node = NodeFactory()
    node.last_facts = {
        "os": {"id": "ubuntu", "pretty_name": "<script>alert(1)</script>"},
        "pad": {f"k{i:04d}": i for i in range(FACT_ROWS + 30)},  # sorts after "os"
    }
    node.last_audit_status = "fail"
    node.save(update_fields=["last_facts", "last_audit_status"])
    # when: the admin's change page opens
    body = admin_client.get(reverse("admin:inventory_node_change", args=[node.pk])).content.decode()
    # then: the fields read as words, the facts are key/value rows, escaped, and the rest is counted
    assert "SSH port" in body and "SSH user" in body and "Ssh port" not in body
    assert '<table class="facts-table">' in body and '<th scope="row">os.pretty_name</th>' in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    assert body.count('<th scope="row">') == FACT_ROWS and "32 more not shown." in body
    assert '{"os":' not in body  # no raw JSON
    # and its state reads in the one vocabulary (Not ready), not the raw worst status ("Fail")
    assert 'data-state="node:not-ready"' in body and "Last audit status" not in body
