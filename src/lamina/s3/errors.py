"""S3's errors, as S3 words them: `<Error><Code>…</Code><Message>…</Message>…</Error>`.

Separate from lamina's JSON errors (errors.py) because S3 speaks XML and names its codes differently;
`api.py` is the one place that renders them.
"""

from __future__ import annotations

from lamina.errors import ApiError


class S3Error(ApiError):
    http_status = 400
    aws_code = "InvalidRequest"
    error_type = None

    def __init__(self, message: str, **fields: str) -> None:
        super().__init__(message)
        #: Extra members of <Error> (Key, BucketName, ...), in order.
        self.fields = fields


def _error(name: str, code: str, status: int, message: str) -> type[S3Error]:
    def init(self: S3Error, message: str = message, **fields: str) -> None:
        S3Error.__init__(self, message, **fields)

    return type(name, (S3Error,), {"aws_code": code, "http_status": status, "__init__": init})


NoSuchBucket = _error("NoSuchBucket", "NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _error("NoSuchKey", "NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _error("NoSuchUpload", "NoSuchUpload", 404,
                      "The specified upload does not exist. The upload ID may be invalid, or the upload may have "
                      "been aborted or completed.")
BucketAlreadyOwnedByYou = _error("BucketAlreadyOwnedByYou", "BucketAlreadyOwnedByYou", 409,
                                 "Your previous request to create the named bucket succeeded and you already own it.")
BucketNotEmpty = _error("BucketNotEmpty", "BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
InvalidBucketName = _error("InvalidBucketName", "InvalidBucketName", 400, "The specified bucket is not valid.")
InvalidRange = _error("InvalidRange", "InvalidRange", 416, "The requested range is not satisfiable")
InvalidURI = _error("InvalidURI", "InvalidURI", 400, "Couldn't parse the specified URI.")
InvalidArgument = _error("InvalidArgument", "InvalidArgument", 400, "Invalid Argument")
InvalidRequest = _error("InvalidRequest", "InvalidRequest", 400, "Invalid Request")
MalformedXML = _error("MalformedXML", "MalformedXML", 400,
                      "The XML you provided was not well-formed or did not validate against our published schema")
EntityTooSmall = _error("EntityTooSmall", "EntityTooSmall", 400,
                        "Your proposed upload is smaller than the minimum allowed object size.")
EntityTooLarge = _error("EntityTooLarge", "EntityTooLarge", 400,
                        "Your proposed upload exceeds the maximum allowed size")
InvalidPart = _error("InvalidPart", "InvalidPart", 400,
                     "One or more of the specified parts could not be found.  The part may not have been uploaded, "
                     "or the specified entity tag may not match the part's entity tag.")
InvalidPartOrder = _error("InvalidPartOrder", "InvalidPartOrder", 400,
                          "The list of parts was not in ascending order. The parts list must be specified in order "
                          "by part number.")
BadDigest = _error("BadDigest", "BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
InvalidDigest = _error("InvalidDigest", "InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
IncompleteBody = _error("IncompleteBody", "IncompleteBody", 400,
                        "You did not provide the number of bytes specified by the Content-Length HTTP header")
XAmzContentSHA256Mismatch = _error("XAmzContentSHA256Mismatch", "XAmzContentSHA256Mismatch", 400,
                                   "The provided 'x-amz-content-sha256' header does not match what was computed.")
SignatureDoesNotMatch = _error("SignatureDoesNotMatch", "SignatureDoesNotMatch", 403,
                               "The request signature we calculated does not match the signature you provided. "
                               "Check your key and signing method.")
InvalidAccessKeyId = _error("InvalidAccessKeyId", "InvalidAccessKeyId", 403,
                            "The AWS Access Key Id you provided does not exist in our records.")
AccessDenied = _error("AccessDenied", "AccessDenied", 403, "Access Denied")
MethodNotAllowed = _error("MethodNotAllowed", "MethodNotAllowed", 405,
                          "The specified method is not allowed against this resource.")
NotImplementedError_ = _error("NotImplemented", "NotImplemented", 501,
                              "A header you provided implies functionality that is not implemented")
PreconditionFailed = _error("PreconditionFailed", "PreconditionFailed", 412,
                            "At least one of the pre-conditions you specified did not hold")
InternalError = _error("InternalError", "InternalError", 500,
                       "We encountered an internal error. Please try again.")
