"""Human review of high-risk answers (issue 22, docs/review.md): the policy that decides
which answers are held or queued (policy.py, used by the chat pipeline), the queue and its
decisions (service.py), and ``/api/v1/reviews`` (api.py)."""
