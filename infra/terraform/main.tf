# otpd on AWS: HTTP API -> GenerateOTP / VerifyOTP -> DynamoDB table whose
# stream feeds SendOTPEmail -> SES. One file per concern: dynamodb.tf,
# lambda.tf, iam.tf, api.tf, stream.tf (outbox, dead letters, alarms), ses.tf.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  # Function key => binary built by cargo-lambda (crates/otpd-lambda/src/bin).
  functions = {
    GenerateOTP  = "generate-otp"
    VerifyOTP    = "verify-otp"
    SendOTPEmail = "send-otp-email"
  }

  ses_identity_arn = "arn:${local.partition}:ses:${local.region}:${local.account}:identity/${var.ses_identity}"

  common_environment = {
    OTPD_TABLE              = aws_dynamodb_table.codes.name
    OTPD_SECRET_PARAMETER   = aws_ssm_parameter.secret.name
    OTPD_PRODUCT_NAME       = var.product_name
    OTPD_MAIL_FROM          = var.mail_from
    OTPD_CODE_TTL           = tostring(var.code_ttl_seconds)
    OTPD_MAX_ATTEMPTS       = tostring(var.max_attempts)
    OTPD_RESEND_COOLDOWN    = tostring(var.resend_cooldown_seconds)
    OTPD_MAX_CODES_PER_HOUR = tostring(var.max_codes_per_hour)
    OTPD_ALLOWED_DOMAINS    = join(",", var.allowed_domains)
    OTPD_LOG_FORMAT         = "json"
  }
}

# One customer-managed key for the table, the secret, the queue, the logs
# and the functions' environment.
resource "aws_kms_key" "otpd" {
  description         = "${var.name_prefix}: table, secret, dead letters and logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
  tags                = var.tags
}

resource "aws_kms_alias" "otpd" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.otpd.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource means this key only; the account root administers it, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_356:same: in a key policy "*" is the key itself.
  #checkov:skip=CKV_AWS_109:same: permissions management on this key is the account administrator's.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:*"]
    }
  }
}

# The key that protects codes at rest (OTPD_SECRET): 32 random bytes, hex.
# Rotating it invalidates the codes in flight, nothing else.
resource "random_id" "secret" {
  byte_length = 32
}

resource "aws_ssm_parameter" "secret" {
  name        = "/${var.name_prefix}/secret"
  description = "otpd code key (hex); read once per Lambda cold start"
  type        = "SecureString"
  key_id      = aws_kms_key.otpd.arn
  value       = random_id.secret.hex
  tags        = var.tags
}
