# One item per address. `ttl` lets DynamoDB collect dead items (late: expiry
# is checked on every read); the stream is the outbox of SendOTPEmail.
resource "aws_dynamodb_table" "codes" {
  name             = var.table_name
  billing_mode     = "PAY_PER_REQUEST"
  hash_key         = "email"
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  attribute {
    name = "email"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.otpd.arn
  }

  deletion_protection_enabled = true
  tags                        = var.tags
}
