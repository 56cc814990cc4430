"""Celery tasks: thin wrappers that take ids and call one service each."""

from celery import shared_task


@shared_task(name="checks.audit_node", acks_late=True, ignore_result=True, soft_time_limit=300, time_limit=330)
def audit_node_task(node_audit_id: int) -> None:
    from .services import node_audit_run

    node_audit_run(node_audit_id=node_audit_id, reload=False)


@shared_task(name="checks.network_matrix", acks_late=True, ignore_result=True)
def network_matrix_task(audit_id: int) -> None:
    """The connectivity matrix of an audit, started once every node audit is final; its time limits are set per
    call from the number of paths (services.matrix_time_budget)."""
    from .services import audit_network_run

    audit_network_run(audit_id=audit_id)


@shared_task(name="checks.matrix_chunk", acks_late=True, ignore_result=True)
def matrix_chunk_task(chunk_id: int) -> None:
    """One chunk of a connectivity matrix; its time limits are set per call from its own paths."""
    from .services.finish import audit_matrix_chunk_run

    audit_matrix_chunk_run(chunk_id=chunk_id)


@shared_task(name="checks.audit_cluster", acks_late=True, ignore_result=True)
def audit_cluster_task(audit_id: int) -> None:
    """Fan out one node task per node; the last node to finish closes the audit."""
    from .services import audit_dispatch

    audit_dispatch(audit_id=audit_id)


@shared_task(name="checks.audit_all_clusters", ignore_result=True)
def audit_all_clusters_task() -> None:
    from inventory.models import Cluster

    from .choices import Trigger
    from .services import AuditRefused, audit_request

    for cluster in Cluster.objects.all():
        try:
            audit_request(cluster=cluster, trigger=Trigger.SCHEDULE)
        except AuditRefused:
            continue


@shared_task(name="checks.sweep_stuck", ignore_result=True)
def sweep_stuck_task() -> None:
    """Beat sends this every 30 s; the service skips it when another sweep ran moments ago (two beats)."""
    from .services import audit_sweep_scheduled

    audit_sweep_scheduled()


@shared_task(name="checks.prune_audits", ignore_result=True)
def prune_audits_task() -> None:
    """Delete audit history past its retention (services.audit_prune); beat runs it daily."""
    from .services import audit_prune

    audit_prune()


@shared_task(name="checks.deliver_webhook", bind=True, acks_late=True, ignore_result=True, max_retries=None)
def deliver_webhook_task(self, delivery_id: int) -> None:
    """One try of a webhook delivery; the service says when to try again (exponential backoff), and when to stop."""
    from .alerts.services import webhook_attempt

    attempt = webhook_attempt(delivery_id=delivery_id)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in)


@shared_task(name="checks.send_alert_email", acks_late=True, ignore_result=True)
def send_alert_email_task(audit_id: int, previous_id: int) -> None:
    from .alerts.services import alert_email_send

    alert_email_send(audit_id=audit_id, previous_id=previous_id)


@shared_task(name="checks.fix_node", acks_late=True, ignore_result=True, soft_time_limit=960, time_limit=1000)
def fix_node_task(fix_node_run_id: int) -> None:
    """One approved node of a fix run: its script over SSH (services.apply.fix_node_run)."""
    from .services.apply import fix_node_run

    fix_node_run(fix_node_run_id=fix_node_run_id)


@shared_task(name="checks.fix_reaudit", bind=True, ignore_result=True, max_retries=120)
def fix_reaudit_task(self, fix_run_id: int) -> None:
    """The audit after a fix run; retried while another audit of the cluster runs."""
    from .services.apply import fix_reaudit

    if not fix_reaudit(fix_run_id=fix_run_id):
        raise self.retry(countdown=5)
