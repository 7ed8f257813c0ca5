"""The admin forms (WTForms through flask-wtf). They check the shape of the input;
the service functions check its meaning, and their refusals' ``details`` are put
beside the field they name (:func:`show_errors`)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from sync.schemas import COLLECTIONS

from ..users import MIN_PASSWORD, ROLES


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def names(text: str | None) -> list[str]:
    """``"notes, phone"`` -> ``["notes", "phone"]``."""
    return [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]


class AgencyForm(FlaskForm):
    code = StringField(
        "Code", validators=[DataRequired(), Length(max=32)], description="e.g. SPD: 2-32 capitals, digits, - or _"
    )
    name = StringField(
        "Name", validators=[DataRequired(), Length(max=200)], description="e.g. Springfield Police Department"
    )


class TokenForm(FlaskForm):
    agency = SelectField("Agency", validators=[DataRequired()])
    officer = StringField(
        "Officer", validators=[DataRequired(), Length(max=200)], description="who the laptop is issued to"
    )


class RevokeForm(FlaskForm):
    reason = StringField("Reason", validators=[Length(max=200)], description="lost, stolen, reassigned…")


class AgreementForm(FlaskForm):
    from_agency = SelectField("From (shares its records)", validators=[DataRequired()])
    to_agency = SelectField("To (may see them)", validators=[DataRequired()])
    collections = MultiCheckboxField("Collections", choices=[SelectChoice(c) for c in COLLECTIONS])
    withhold = StringField("Withheld fields", description="comma-separated; seen only as digests, e.g. notes, phone")
    write = StringField(
        "Writable fields", description="comma-separated; the receiving agency may change them, e.g. status"
    )


class UserForm(FlaskForm):
    name = StringField("User name", validators=[DataRequired(), Length(max=100)])
    role = SelectField("Role", choices=[SelectChoice(r) for r in ROLES], default="staff", validators=[DataRequired()])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=MIN_PASSWORD)],
        description=f"at least {MIN_PASSWORD} characters",
    )
    confirm = PasswordField("Password again", validators=[DataRequired(), EqualTo("password", "The passwords differ.")])


def show_errors(form: FlaskForm, details: Any, message: str) -> None:
    """Put a service refusal's field messages beside the fields they name; a refusal that
    names no field of this form is shown above the form."""
    placed = False
    if isinstance(details, dict):
        for name, messages in details.items():
            field = getattr(form, name, None)
            if field is not None and hasattr(field, "errors"):
                field.errors = [*list(field.errors or []), *(list(messages) or [message])]
                placed = True
    if not placed:
        form.form_errors.append(message)
