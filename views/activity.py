"""Activity: who did what and when (the append-only audit trail), the month's budgets, the allow-list."""

import datetime as dt

import streamlit as st

from legalft import audit, auth, budget
from legalft.errors import LegalftError, render_error

st.title("Activity")
user = auth.current_user()
st.caption(f"Signed in as **{user.name}** ({user.id}, {user.role or 'no role'}"
           + (", sign-in off: this machine only" if user.source == "local" else "") + "). "
           "Every action that changes state or costs money is recorded here; the trail cannot be edited.")

try:
    budgets = budget.all_budgets()
    users, actions = audit.audit_choices()
except LegalftError as exc:
    st.error(render_error(exc))
    st.stop()

st.subheader("Budgets this month")
columns = st.columns(len(budgets))
for column, status in zip(columns, budgets):
    column.metric(budget.LABELS[status.kind], f"${status.spent:,.2f} spent",
                  "no limit" if status.limit is None else f"${status.left:,.2f} left of ${status.limit:,.2f}",
                  delta_color="off", help=f"{status.jobs} jobs created in {status.month}: actual cost, or the "
                  "estimate while a job has none")
if user.can("admin"):
    with st.expander("Set a budget"):
        with st.form("activity_budget_form"):
            kind = st.selectbox("Budget", list(budget.KINDS), format_func=budget.LABELS.get, key="activity_budget_kind")
            amount = st.number_input("USD a month (0 blocks every launch)", min_value=0.0, step=50.0,
                                     key="activity_budget_amount")
            no_limit = st.checkbox("No limit", key="activity_budget_none")
            if st.form_submit_button("Save budget"):
                try:
                    budget.set_budget(kind, None if no_limit else amount)
                    st.rerun()
                except LegalftError as exc:
                    st.error(render_error(exc))

st.subheader("Audit trail")
f1, f2, f3, f4 = st.columns(4)
who = f1.selectbox("User", ["everyone", *users], key="activity_user")
what = f2.selectbox("Action", ["every action", *actions], key="activity_action")
outcome = f3.selectbox("Outcome", ["any", "ok", "denied", "refused", "failed", "override"], key="activity_outcome")
since = f4.date_input("Since", value=None, key="activity_since")
entries = audit.list_audit(user_id=None if who == "everyone" else who,
                           action_prefix=None if what == "every action" else what,
                           outcome=None if outcome == "any" else outcome,
                           since=since.isoformat() if isinstance(since, dt.date) else None)
summary = audit.activity_summary(entries)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Entries", summary["rows"])
m2.metric("Users", summary["users"])
m3.metric("Refused", summary["refused"], help="denied by role, or refused over budget")
m4.metric("Estimated cost", f"${summary['estimated_cost']:,.2f}", help="of the actions that ran")
if entries:
    st.dataframe(audit.audit_rows(entries), hide_index=True, width="stretch")
    st.download_button("Download CSV", audit.audit_csv(entries), file_name="legalft-audit.csv", mime="text/csv",
                       key="activity_csv")
else:
    st.info("Nothing recorded yet for these filters.")

st.subheader("Who may sign in")
allow = auth.list_users()
if allow:
    st.dataframe([{"user or domain": p, "role": r} for p, r in allow.items()], hide_index=True, width="stretch")
else:
    st.info("No allow-list yet: with sign-in configured nobody may enter. Add people here (admins) or with "
            "`legalft users add EMAIL --role viewer|trainer|admin`.")
if user.can("admin"):
    with st.expander("Add or change a user"):
        with st.form("activity_user_form"):
            principal = st.text_input("E-mail, @domain or os:NAME", key="activity_principal")
            role = st.selectbox("Role", auth.ROLES, key="activity_role")
            add, remove = st.columns(2)
            try:
                if add.form_submit_button("Save"):
                    auth.set_user(principal, role)
                    st.rerun()
                if remove.form_submit_button("Remove"):
                    auth.remove_user(principal)
                    st.rerun()
            except LegalftError as exc:
                st.error(render_error(exc))
