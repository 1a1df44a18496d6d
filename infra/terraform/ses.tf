# The sending identity, when this module owns it. Publish its DKIM records
# (aws_sesv2_email_identity.this[0].dkim_signing_attributes) in DNS.
resource "aws_sesv2_email_identity" "this" {
  count          = var.create_ses_identity ? 1 : 0
  email_identity = var.ses_identity
  tags           = var.tags
}
