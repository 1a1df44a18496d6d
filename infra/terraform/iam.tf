# One role per function, each allowed exactly the actions it performs, on
# exactly the resources it touches.

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

locals {
  table_arn = aws_dynamodb_table.codes.arn

  # What every function needs: its own logs, traces, and the code key.
  base_statements = {
    for name, _ in local.functions : name => [
      {
        sid       = "OwnLogs"
        actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        resources = ["${aws_cloudwatch_log_group.function[name].arn}:*"]
      },
      {
        sid       = "Traces"
        actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        resources = ["*"] # X-Ray has no resource-level permissions.
      },
      {
        sid       = "CodeKey"
        actions   = ["ssm:GetParameter"]
        resources = [aws_ssm_parameter.secret.arn]
      },
      {
        sid       = "DecryptWithTheKey"
        actions   = ["kms:Decrypt"]
        resources = [aws_kms_key.otpd.arn]
      },
    ]
  }

  function_statements = {
    GenerateOTP = [
      {
        sid       = "IssueCodes"
        actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
        resources = [local.table_arn]
      },
    ]
    VerifyOTP = [
      {
        sid       = "CheckAndConsumeCodes"
        actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
        resources = [local.table_arn]
      },
    ]
    SendOTPEmail = [
      {
        sid       = "ReadTheStream"
        actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
        resources = [aws_dynamodb_table.codes.stream_arn]
      },
      {
        sid       = "SendFromTheIdentity"
        actions   = ["ses:SendEmail"]
        resources = [local.ses_identity_arn]
      },
      {
        sid       = "DeadLetters"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.send_dlq.arn]
      },
      {
        sid       = "EncryptDeadLetters"
        actions   = ["kms:GenerateDataKey"]
        resources = [aws_kms_key.otpd.arn]
      },
    ]
  }
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  dynamic "statement" {
    for_each = concat(local.base_statements[each.key], local.function_statements[each.key])
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.name_prefix}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}
